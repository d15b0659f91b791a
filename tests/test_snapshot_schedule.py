"""A dataset's snapshot schedule: set, read and removed over HTTP; its snapshots taken through the command log
with the retention applied after each; of two command-API replicas, one takes each due snapshot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update

from command_api.schedules import take_due_snapshots
from entrypoints.http_app import create_app
from events import Topics
from tests.helpers import eventually, serving
from tests.kafka_tools import workers
from tributary.db.models import OperationRow, SnapshotScheduleRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.embedding import Embedders
from tributary.kafka import KafkaCommandPublisher
from tributary.settings import Settings

SCHEDULE = "/api/v1/datasets/docs/snapshot-schedule"


async def create_docs(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 2})
    assert created.status_code == 200, created.text
    upserted = await client.post(
        "/api/v1/datasets/docs/vectors?wait=true", json={"vectors": [{"id": "a", "vector": [1.0, 0.0]}]}
    )
    assert upserted.status_code == 200, upserted.text


async def snapshot_ids(client: httpx.AsyncClient) -> list[str]:
    listed = await client.get("/api/v1/datasets/docs/snapshots")
    assert listed.status_code == 200, listed.text
    return [snapshot["snapshot_id"] for snapshot in listed.json()["snapshots"]]


async def test_a_schedule_takes_snapshots_and_keeps_the_last_ones(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"snapshot_schedule_poll_s": 0.2})
    async with serving(create_app(settings)) as client:
        await create_docs(client)
        assert (await client.put(SCHEDULE, json={"every_s": 0.5})).status_code == 422
        missing = await client.put("/api/v1/datasets/nope/snapshot-schedule", json={"every_s": 1})
        assert missing.status_code == 404, missing.text
        assert (await client.get(SCHEDULE)).status_code == 404

        before = datetime.now(UTC)
        scheduled = await client.put(SCHEDULE, json={"every_s": 1, "keep_last": 2})
        assert scheduled.status_code == 200, scheduled.text
        view = scheduled.json()
        assert (view["dataset"], view["every_s"], view["keep_last"]) == ("docs", 1, 2)
        assert datetime.fromisoformat(view["next_at"]) >= before + timedelta(seconds=1)
        assert (await client.get(SCHEDULE)).json() == view

        async def taken() -> list[str] | None:
            return await snapshot_ids(client) or None

        first = await eventually(taken, timeout=60, every=0.2)

        # Taken again and again, the oldest pruned: two kept, and the first is no longer one of them.
        async def pruned() -> list[str] | None:
            ids = await snapshot_ids(client)
            return ids if len(ids) == 2 and first[0] not in ids else None

        await eventually(pruned, timeout=60, every=0.2)

        # Another tenant neither sees nor changes it.
        made = await client.post("/api/v1/admin/keys", json={"tenant": "other", "roles": ["admin"]})
        other = {"Authorization": f"Bearer {made.json()['key']}"}
        for method in ("GET", "PUT", "DELETE"):
            answer = await client.request(method, SCHEDULE, headers=other, json={"every_s": 5})
            assert answer.status_code == 404, f"{method}: {answer.text}"

        assert (await client.delete(SCHEDULE)).status_code == 204
        assert (await client.get(SCHEDULE)).status_code == 404
        assert (await client.delete(SCHEDULE)).status_code == 404


async def test_of_two_command_api_replicas_one_takes_each_due_snapshot(
    distributed_settings: Settings,
) -> None:
    # The replicas' own rounds never come in this test: the two below are run by hand, at the same moment.
    settings = distributed_settings.model_copy(update={"snapshot_schedule_poll_s": 3600})
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    replicas = [KafkaCommandPublisher(Topics(settings.topic_prefix), settings) for _ in range(2)]
    embedders = Embedders(settings)
    try:
        async with (
            workers(settings, "applier", "projector"),
            serving(create_app(settings, "command-api")) as client,
            serving(create_app(settings, "query-api")) as reads,
        ):
            await create_docs(client)
            assert (await client.put(SCHEDULE, json={"every_s": 60, "keep_last": 3})).status_code == 200
            now = datetime.now(UTC)
            was = now - timedelta(seconds=150)
            async with sessions() as session:
                await session.execute(update(SnapshotScheduleRow).values(next_at=was))
                await session.commit()

            taken = await asyncio.gather(
                *(take_due_snapshots(sessions, replica, embedders, settings, now) for replica in replicas)
            )
            assert sorted(taken) == [0, 1]
            # Rounds missed are not made up: the next is the first on the grid after now.
            view = (await reads.get(SCHEDULE)).json()
            assert datetime.fromisoformat(view["next_at"]) == was + timedelta(seconds=180)
            # Nothing is due any more.
            assert await take_due_snapshots(sessions, replicas[0], embedders, settings, now) == 0

            async with sessions() as session:
                snapshot = (
                    await session.execute(
                        select(OperationRow).where(OperationRow.command_type == "CreateSnapshot")
                    )
                ).scalar_one()

            async def applied() -> bool | None:
                answer = await reads.get(f"/api/v1/operations/{snapshot.id}")
                return True if answer.json()["status"] == "applied" else None

            await eventually(applied, timeout=60)
            assert await snapshot_ids(reads) == [snapshot.id]
            async with sessions() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(OperationRow)
                    .where(OperationRow.command_type == "CreateSnapshot")
                )
            assert count == 1
    finally:
        for replica in replicas:
            await replica.close()
        await embedders.aclose()
        await engine.dispose()
