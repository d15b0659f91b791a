"""The thin slice through a real Kafka broker: command API -> commands topic -> applier -> DeepLake ->
events topic -> projector -> catalog read by the query API."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from entrypoints.http_app import create_app
from events import (
    CreateDataset,
    CreateDatasetPayload,
    DatasetCreated,
    DeadLetter,
    Topics,
    parse_event,
    partition_key,
)
from tests.helpers import eventually, serving
from tests.kafka_tools import command_count, event_reader, workers
from tributary.deeplake_lib import deeplake
from tributary.settings import Settings


async def test_create_dataset_crosses_kafka_and_is_read_back(distributed_settings: Settings) -> None:
    settings = distributed_settings
    command_api = create_app(settings, "command-api")
    query_api = create_app(settings, "query-api")
    async with (
        workers(settings, "applier", "projector"),
        serving(command_api) as commands,
        serving(query_api) as queries,
        event_reader(settings) as events,
    ):
        assert (await queries.get("/api/v1/datasets/docs")).status_code == 404

        answer = await commands.post(
            "/api/v1/datasets", json={"name": "docs", "dimensions": 384, "metric": "cosine"}
        )
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        partition, _, offset = accepted["consistency_token"].partition(":")
        assert 0 <= int(partition) < settings.command_partitions and int(offset) >= 0

        record = await asyncio.wait_for(events.getone(), timeout=60)
        assert record.key == b"default/docs"
        event = parse_event(record.value)
        assert isinstance(event, DatasetCreated)
        assert str(event.causation_id) == accepted["operation_id"]
        assert (event.tenant, event.dataset, event.payload.dimensions) == ("default", "docs", 384)

        async def catalog_row() -> dict[str, object] | None:
            response = await queries.get("/api/v1/datasets/docs")
            return response.json() if response.status_code == 200 else None

        dataset = await eventually(catalog_row)
        assert dataset["dimensions"] == 384 and dataset["metric"] == "cosine" and dataset["status"] == "ready"
        assert dataset["version"] == event.payload.version

        opened = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/docs")
        assert len(opened) == 0 and "embedding" in [c.name for c in opened.schema.columns]

        async def applied() -> dict[str, object] | None:
            response = await queries.get(f"/api/v1/operations/{accepted['operation_id']}")
            body = response.json()
            return body if body.get("status") == "applied" else None

        await eventually(applied)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"dimensions": 3, "metric": "cosine"}', "name"),
        ('{"name": "a", "dimensions": 0, "metric": "cosine"}', "dimensions"),
        ('{"name": "a", "dimensions": 65537, "metric": "cosine"}', "dimensions"),
        ('{"name": "a", "dimensions": 3, "metric": "hamming"}', "metric"),
        ('{"name": "a", "dimensions": 3,', "JSON"),
    ],
)
async def test_invalid_create_gets_422_and_publishes_nothing(
    distributed_settings: Settings, body: str, reason: str
) -> None:
    async with serving(create_app(distributed_settings, "command-api")) as commands:
        before = await command_count(distributed_settings)
        answer = await commands.post(
            "/api/v1/datasets", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422
        assert reason in answer.text
        assert await command_count(distributed_settings) == before


async def test_wait_true_answers_once_applied_and_conflicts_are_409(distributed_settings: Settings) -> None:
    settings = distributed_settings
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        answer = await commands.post(
            "/api/v1/datasets?wait=true", json={"name": "shop", "dimensions": 8, "metric": "l2"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "applied"
        again = await commands.post(
            "/api/v1/datasets", json={"name": "shop", "dimensions": 8, "metric": "l2"}
        )
        assert again.status_code == 409


async def test_direct_producer_commands_apply_and_poison_goes_to_dead_letters(
    distributed_settings: Settings,
) -> None:
    settings = distributed_settings
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    dead_letters = AIOKafkaConsumer(
        topics.dead_letters, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    command = CreateDataset(tenant="default", dataset="direct", payload=CreateDatasetPayload(dimensions=16))
    letters_before = REGISTRY.get_sample_value("tributary_dead_letters_total", {"reason": "unreadable"}) or 0
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "query-api")) as queries,
    ):
        await producer.start()
        await dead_letters.start()
        try:
            key = partition_key("default", "direct")
            await producer.send_and_wait(
                topics.commands, b'{"type": "CreateDataset", "tenant": "default"}', key=key
            )
            await producer.send_and_wait(topics.commands, command.model_dump_json().encode(), key=key)

            letter = DeadLetter.model_validate_json((await asyncio.wait_for(dead_letters.getone(), 60)).value)
            assert letter.reason.startswith("invalid command") and "dataset" in letter.reason
            assert letter.source_topic == topics.commands and letter.key == "default/direct"

            async def counted() -> float | None:
                found = REGISTRY.get_sample_value("tributary_dead_letters_total", {"reason": "unreadable"})
                return found if found == letters_before + 1 else None

            await eventually(counted)

            async def created() -> int | None:
                response = await queries.get("/api/v1/datasets/direct")
                return response.status_code if response.status_code == 200 else None

            await eventually(created)
        finally:
            await producer.stop()
            await dead_letters.stop()


async def test_a_full_batch_of_vectors_crosses_kafka_into_deeplake(distributed_settings: Settings) -> None:
    settings = distributed_settings
    vectors = np.random.default_rng(7).standard_normal((1000, 384)).astype(np.float32)
    records = [{"id": f"v{i}", "vector": v.tolist(), "metadata": {"i": i}} for i, v in enumerate(vectors)]
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        created = await commands.post("/api/v1/datasets?wait=true", json={"name": "big", "dimensions": 384})
        assert created.json()["status"] == "applied"
        answer = await commands.post("/api/v1/datasets/big/vectors?wait=true", json={"vectors": records})
        assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/big")
    assert len(ds) == 1000
    np.testing.assert_array_equal(np.asarray(ds["embedding"][0:1000]), vectors)
    assert list(ds["id"][:]) == [f"v{i}" for i in range(1000)]
