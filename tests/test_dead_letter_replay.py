"""Dead letters end to end, in embedded mode and through the distributed roles over Kafka and PostgreSQL: a poison
command is dead-lettered, listed, inspected, replayed after its cause is fixed and applied once however often it
is replayed, then purged; a tenant sees only its own; the count is on /metrics; the server's CLI does the same."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid5

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from entrypoints.http_app import create_app
from events import Topics, UpsertVectors, UpsertVectorsPayload, partition_key
from tests.helpers import eventually, sample, serving
from tests.kafka_tools import distributed
from tests.processes import tributary_command
from tributary.bus import EncodedCommand
from tributary.db.models import BusCommandRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings

STRONG = "?consistency=strong"
LETTERS = "/api/v1/admin/dead-letters"
GARBAGE = b'{"type": "UpsertVectors", "garbage": true}'

Publish = Callable[[list[bytes]], Awaitable[None]]


@asynccontextmanager
async def deployment(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Publish]]:
    """The write and read clients, and how a direct producer puts raw messages on the command log."""
    if settings.database_url is None:
        app = create_app(settings)
        async with serving(app) as client:
            yield client, client, direct_producer(settings)
        return
    async with distributed(settings) as (commands, queries):
        yield commands, queries, direct_producer(settings)


def direct_producer(settings: Settings) -> Publish:
    async def publish(bodies: list[bytes]) -> None:
        key = partition_key("default", "late")
        if settings.database_url is not None:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
            await producer.start()
            try:
                for body in bodies:
                    await producer.send_and_wait(Topics(settings.topic_prefix).commands, body, key=key)
            finally:
                await producer.stop()
            return
        # Written to embedded mode's log as they are (the bus reads it again within a second).
        engine = engine_for(settings)
        try:
            async with make_sessionmaker(engine).begin() as session:
                session.add_all(
                    BusCommandRow(key=key.decode(), body=body.decode(), status="pending") for body in bodies
                )
        finally:
            await engine.dispose()

    return publish


def poison(tenant: str, dataset: str, key: str) -> UpsertVectors:
    """An upsert into a dataset that does not exist (yet), as a direct producer may send one."""
    payload = UpsertVectorsPayload(ids=["a"], vectors=np.ones((1, 4), dtype=np.float32))
    return UpsertVectors(tenant=tenant, dataset=dataset, payload=payload, idempotency_key=key)


async def letters(
    client: httpx.AsyncClient, query: str = "", headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    answer = await client.get(LETTERS + query, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["dead_letters"])


async def listed(
    client: httpx.AsyncClient, count: int, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = await letters(client, headers=headers)
        return found if len(found) >= count else None

    return await eventually(probe, timeout=60)


async def dataset_state(client: httpx.AsyncClient) -> tuple[str, int]:
    """The version and count of dataset "late", once every command sent before was applied."""
    counted = await client.post(f"/api/v1/datasets/late/count{STRONG}", json={})
    assert counted.status_code == 200, counted.text
    return counted.json()["version"], int(counted.json()["count"])


async def applied(client: httpx.AsyncClient, operation_id: str) -> None:
    async def probe() -> bool | None:
        answer = await client.get(f"/api/v1/operations/{operation_id}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] != "rejected", answer.text
        return True if answer.json()["status"] == "applied" else None

    await eventually(probe, timeout=60)


@pytest.fixture(params=["embedded", "distributed"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.getfixturevalue(f"{request.param}_settings")  # type: ignore[no-any-return]


async def test_dead_letters_are_listed_inspected_replayed_once_and_purged_per_tenant(
    settings: Settings,
) -> None:
    async with deployment(settings) as (writes, reads, publish):
        made = await writes.post("/api/v1/admin/keys", json={"tenant": "other", "roles": ["admin"]})
        assert made.status_code == 201, made.text
        other = {"Authorization": f"Bearer {made.json()['key']}"}
        writer = await writes.post("/api/v1/admin/keys", json={"tenant": "default", "roles": ["writer"]})
        not_admin = {"Authorization": f"Bearer {writer.json()['key']}"}

        late = poison("default", "late", "client-key-1")
        await publish(
            [
                EncodedCommand.of(late).body,
                GARBAGE,
                EncodedCommand.of(poison("other", "elsewhere", "other-key")).body,
            ]
        )
        mine = await listed(writes, 2)
        assert len(mine) == 2
        (dead,) = [letter for letter in mine if letter["reason"] == "dataset 'late' does not exist"]
        (garbage,) = [letter for letter in mine if letter is not dead]
        assert dead["idempotency_key"] == "client-key-1" and dead["status"] == "dead"
        # Not a command: its tenant and dataset are its key's.
        assert garbage["reason"].startswith("invalid command") and garbage["dataset"] == "late"

        # Inspect: the reason and the original envelope.
        detail = (await writes.get(f"{LETTERS}/{dead['id']}")).json()
        assert detail["envelope"]["id"] == str(late.id) and detail["envelope"]["payload"]["ids"] == ["a"]
        assert detail["message"] is None
        shown = (await writes.get(f"{LETTERS}/{garbage['id']}")).json()
        assert shown["envelope"] == json.loads(GARBAGE)

        # Tenant isolation: each sees its own; the other's is a 404 on every call; a writer has no say.
        (others,) = await listed(writes, 1, headers=other)
        assert others["tenant"] == "other" and others["dataset"] == "elsewhere"
        for method, path in [
            ("GET", f"{LETTERS}/{dead['id']}"),
            ("POST", f"{LETTERS}/{dead['id']}/replay"),
            ("DELETE", f"{LETTERS}/{dead['id']}"),
        ]:
            answer = await writes.request(method, path, headers=other)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await writes.get(f"{LETTERS}/{others['id']}")).status_code == 404
        assert (await writes.get(LETTERS, headers=not_admin)).status_code == 403

        # Fix the cause, then replay: a new operation, applied; the letter says by which.
        created = await writes.post(
            "/api/v1/datasets?wait=true", json={"name": "late", "dimensions": 4, "metric": "cosine"}
        )
        assert created.status_code == 200, created.text
        replayed = await writes.post(f"{LETTERS}/{dead['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        operation = replayed.json()["operation_id"]
        await applied(reads, operation)
        after_first = await dataset_state(reads)
        assert after_first[1] == 1
        letter = (await writes.get(f"{LETTERS}/{dead['id']}")).json()
        assert letter["status"] == "replayed" and letter["replay_operation"] == operation

        # Replayed again, one by one or all: the same operation, nothing applied again.
        again = await writes.post(f"{LETTERS}/{dead['id']}/replay")
        assert again.status_code == 202 and again.json()["operation_id"] == operation
        report = (await writes.post(f"{LETTERS}/replay")).json()
        assert report["replayed"] == []
        assert [skipped["dead_letter"] for skipped in report["skipped"]] == [garbage["id"]]
        # Even published a second time (as a replay after its operation expired would be), the applier's ledger
        # recognises the replayed command: no new commit.
        replay_command = late.model_copy(update={"id": uuid5(UUID(str(late.id)), "replay")})
        assert str(replay_command.id) == operation
        await publish([EncodedCommand.of(replay_command).body])
        assert await dataset_state(reads) == after_first

        # The count metric.
        async def stored() -> float | None:
            text = (await writes.get("/metrics")).text
            value = sample(text, "tributary_dead_letters_stored", status="replayed")
            return (
                value
                if value == 1 and sample(text, "tributary_dead_letters_stored", status="dead") == 2
                else None
            )

        await eventually(stored, timeout=30)

        # Purge: one, then every replayed one; the other tenant's stays.
        assert (await writes.delete(f"{LETTERS}/{garbage['id']}")).status_code == 204
        assert (await writes.get(f"{LETTERS}/{garbage['id']}")).status_code == 404
        purged = await writes.delete(f"{LETTERS}?status=replayed")
        assert purged.json() == {"purged": 1}
        assert await letters(writes) == []
        assert len(await letters(writes, "?status=dead")) == 0
        assert [letter["id"] for letter in await letters(writes, headers=other)] == [others["id"]]


async def test_the_cli_lists_shows_replays_and_purges(settings: Settings) -> None:
    async with deployment(settings) as (writes, reads, publish):
        late = poison("default", "late", "client-key-1")
        await publish([EncodedCommand.of(late).body])
        (dead,) = await listed(writes, 1)

        listing = await tributary_command(settings, "dead-letters", "list", "--status", "dead")
        assert listing.returncode == 0, listing.stderr
        assert [json.loads(line)["id"] for line in listing.stdout.splitlines()] == [dead["id"]]
        shown = await tributary_command(settings, "dead-letters", "show", dead["id"])
        assert json.loads(shown.stdout)["envelope"]["id"] == str(late.id)

        created = await writes.post("/api/v1/datasets?wait=true", json={"name": "late", "dimensions": 4})
        assert created.status_code == 200, created.text
        replayed = await tributary_command(settings, "dead-letters", "replay", dead["id"])
        assert replayed.returncode == 0, replayed.stderr
        operation = json.loads(replayed.stdout)["operation"]["operation_id"]
        await applied(reads, operation)
        assert (await dataset_state(reads))[1] == 1
        again = await tributary_command(settings, "dead-letters", "replay", "--all")
        assert again.returncode == 0 and again.stdout == "", again.stderr

        purged = await tributary_command(settings, "dead-letters", "purge", "--all", "--status", "replayed")
        assert purged.stdout.strip() == "purged 1 dead letters", purged.stderr
        missing = await tributary_command(settings, "dead-letters", "show", dead["id"])
        assert missing.returncode == 1 and "not found" in missing.stderr
