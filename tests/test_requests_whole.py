"""A request is published whole or not at all, once: split upserts in one Kafka transaction (read with
read_committed), aborted transactions never applied, and Idempotency-Key retries that publish nothing; and a
poison message takes nothing else down with it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import delete, func, select, update

from command_api.retention import purge_expired
from entrypoints.http_app import create_app
from events import DeadLetter, Topics, UpsertVectors, UpsertVectorsPayload, partition_key
from tests.helpers import serving
from tests.kafka_tools import command_count, workers
from tributary.db.models import BusCommandRow, OperationRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.deeplake_lib import deeplake
from tributary.settings import Settings


def stored_ids(settings: Settings, dataset: str) -> list[str]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/{dataset}")
    return [str(i) for i in ds["id"][:]]


async def test_a_large_upsert_is_split_and_applied_whole(distributed_settings: Settings) -> None:
    settings = distributed_settings.model_copy(update={"command_part_bytes": 64 * 1024})
    vectors = np.random.default_rng(1).standard_normal((1000, 32)).astype(np.float32)
    records = [{"id": f"v{i}", "vector": v.tolist()} for i, v in enumerate(vectors)]
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await commands.post("/api/v1/datasets?wait=true", json={"name": "big", "dimensions": 32})
        before = await command_count(settings)
        answer = await commands.post("/api/v1/datasets/big/vectors?wait=true", json={"vectors": records})
        assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text
        # 1000 x 32 floats packed is about 170 KB: at least three parts, plus the transaction's commit marker.
        assert await command_count(settings) - before >= 4
        operation = await commands.get(f"/api/v1/operations/{answer.json()['operation_id']}")
        assert operation.status_code == 404  # the command API does not serve reads
    assert stored_ids(settings, "big") == [f"v{i}" for i in range(1000)]
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/big")
    np.testing.assert_array_equal(np.asarray(ds["embedding"][:]), vectors)


async def test_an_aborted_transaction_is_never_applied(distributed_settings: Settings) -> None:
    settings = distributed_settings
    topic = Topics(settings.topic_prefix).commands
    key = partition_key("default", "tx")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
    )

    def upsert(vector_id: str) -> bytes:
        payload = UpsertVectorsPayload(ids=[vector_id], vectors=np.ones((1, 4), dtype=np.float32))
        return UpsertVectors(tenant="default", dataset="tx", payload=payload).model_dump_json().encode()

    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await commands.post("/api/v1/datasets?wait=true", json={"name": "tx", "dimensions": 4})
        await producer.start()
        try:
            await producer.begin_transaction()
            await producer.send_and_wait(topic, upsert("aborted"), key=key)
            await producer.abort_transaction()
        finally:
            await producer.stop()
        last = await commands.post(
            "/api/v1/datasets/tx/vectors?wait=true",
            json={"vectors": [{"id": "after", "vector": [1, 2, 3, 4]}]},
        )
        assert last.json()["status"] == "applied"
    assert stored_ids(settings, "tx") == ["after"]


async def test_a_retry_with_the_same_idempotency_key_publishes_nothing_over_kafka(
    distributed_settings: Settings,
) -> None:
    settings = distributed_settings
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await commands.post("/api/v1/datasets?wait=true", json={"name": "idem", "dimensions": 2})
        body = {"vectors": [{"vector": [1, 2]}, {"vector": [3, 4]}]}
        headers = {"Idempotency-Key": "batch-17"}
        first = await commands.post("/api/v1/datasets/idem/vectors", json=body, headers=headers)
        assert first.status_code == 202
        published = await command_count(settings)
        retry = await commands.post("/api/v1/datasets/idem/vectors?wait=true", json=body, headers=headers)
        assert retry.json()["operation_id"] == first.json()["operation_id"]
        assert retry.json()["ids"] == first.json()["ids"], "generated ids come back with the first answer"
        assert retry.json()["consistency_token"] == first.json()["consistency_token"]
        assert retry.json()["status"] == "applied"
        assert await command_count(settings) == published
    assert sorted(stored_ids(settings, "idem")) == sorted(first.json()["ids"])


async def test_idempotency_key_in_embedded_mode(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        headers = {"Idempotency-Key": "create-docs"}
        created = await client.post(
            "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 2}, headers=headers
        )
        again = await client.post(
            "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 2}, headers=headers
        )
        # The retry is the first request's answer, not the 409 a second create would get.
        assert again.status_code == 200 and again.json() == created.json()

        other = await client.post(
            "/api/v1/datasets?wait=true", json={"name": "other", "dimensions": 2}, headers=headers
        )
        assert other.status_code == 422 and "different request" in other.text

        engine = engine_for(embedded_settings)
        async with make_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(BusCommandRow)) == 1
        await engine.dispose()


async def test_poison_in_the_middle_of_a_batch_is_dead_lettered_and_its_neighbours_applied(
    distributed_settings: Settings,
) -> None:
    settings = distributed_settings
    topics = Topics(settings.topic_prefix)
    key = partition_key("default", "mixed")

    def upsert(vector_id: str, dims: int = 4) -> bytes:
        payload = UpsertVectorsPayload(ids=[vector_id], vectors=np.ones((1, dims), dtype=np.float32))
        return UpsertVectors(tenant="default", dataset="mixed", payload=payload).model_dump_json().encode()

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    dead_letters = AIOKafkaConsumer(
        topics.dead_letters, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await commands.post("/api/v1/datasets?wait=true", json={"name": "mixed", "dimensions": 4})
        await producer.start()
        await dead_letters.start()
        try:
            # Sent together so that the applier reads them as one batch.
            for body in [
                upsert("a"),
                b'{"type": "UpsertVectors", "garbage": true}',
                upsert("b", dims=3),
                upsert("c"),
            ]:
                await producer.send(topics.commands, body, key=key)
            await producer.flush()
            letters = [
                DeadLetter.model_validate_json((await asyncio.wait_for(dead_letters.getone(), 60)).value)
                for _ in range(2)
            ]
        finally:
            await producer.stop()
            await dead_letters.stop()
        last = await commands.post(
            "/api/v1/datasets/mixed/vectors?wait=true",
            json={"vectors": [{"id": "d", "vector": [1, 2, 3, 4]}]},
        )
        assert last.json()["status"] == "applied"
    reasons = sorted(letter.reason for letter in letters)
    assert reasons[0].startswith("invalid command") and "dimensions" in reasons[1], reasons
    assert sorted(stored_ids(settings, "mixed")) == ["a", "c", "d"]


async def test_operations_and_their_idempotency_keys_expire(embedded_settings: Settings) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = {"vectors": [{"id": "a", "vector": [1, 2]}]}
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "exp", "dimensions": 2})
        keyed = await client.post("/api/v1/datasets/exp/vectors?wait=true", json=first, headers=key)
        engine = engine_for(embedded_settings)
        sessions = make_sessionmaker(engine)
        week = 7 * 24 * 3600.0
        assert await purge_expired(sessions, week) == 0, "recent operations stay"
        async with sessions.begin() as session:
            await session.execute(
                update(OperationRow).values(updated_at=datetime.now(UTC) - timedelta(days=8))
            )
        assert await purge_expired(sessions, week) == 2, "the create and the upsert"
        await engine.dispose()
        assert (await client.get(f"/api/v1/operations/{keyed.json()['operation_id']}")).status_code == 404

        # The key is free again. Another request with it is a new one, applied (not a 422, not mistaken by
        # the applier for the first, whose id its ledger still holds); the first request again is applied once.
        second = {"vectors": [{"id": "b", "vector": [3, 4]}]}
        reused = await client.post("/api/v1/datasets/exp/vectors?wait=true", json=second, headers=key)
        assert reused.status_code == 200 and reused.json()["status"] == "applied"
        assert reused.json()["operation_id"] != keyed.json()["operation_id"]
        got = await client.post(
            "/api/v1/datasets/exp/vectors/get?consistency=strong", json={"ids": ["a", "b"]}
        )
        assert sorted(r["id"] for r in got.json()["results"]) == ["a", "b"]
        again = await client.post(
            "/api/v1/datasets/exp/vectors?wait=true", json=first, headers={"Idempotency-Key": "k-2"}
        )
        assert again.json()["status"] == "applied"
        count = await client.post("/api/v1/datasets/exp/count?consistency=strong", json={})
        assert count.json()["count"] == 2

        # An outcome event read again after the purge makes the projector recreate the first operation's row,
        # without key or hash; the first request retried is still answered from it.
        engine = engine_for(embedded_settings)
        async with make_sessionmaker(engine).begin() as session:
            await session.execute(delete(OperationRow).where(OperationRow.id == again.json()["operation_id"]))
            session.add(
                OperationRow(
                    id=again.json()["operation_id"],
                    tenant="default",
                    dataset="exp",
                    command_type="UpsertVectors",
                    status="applied",
                    consistency_token="0:1",
                )
            )
        await engine.dispose()
        retried = await client.post(
            "/api/v1/datasets/exp/vectors", json=first, headers={"Idempotency-Key": "k-2"}
        )
        assert retried.status_code == 202 and retried.json()["operation_id"] == again.json()["operation_id"]
