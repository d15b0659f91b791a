"""The SQL catalog is a projection: thrown away, it is folded again from the event log, through Kafka and in
embedded mode."""

from __future__ import annotations

import httpx
from sqlalchemy import delete, update

from entrypoints.http_app import create_app
from tests.helpers import serving
from tests.kafka_tools import workers
from tributary.db.models import DatasetRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings
from workers.catalog_rebuild import embedded_events, kafka_events, rebuild_catalog


async def fill(writes: httpx.AsyncClient) -> None:
    for name in ("a", "b", "gone"):
        await writes.post("/api/v1/datasets?wait=true", json={"name": name, "dimensions": 2})
    vectors = [{"id": f"v{i}", "vector": [i, 1]} for i in range(5)]
    await writes.post("/api/v1/datasets/a/vectors?wait=true", json={"vectors": vectors})
    await writes.post("/api/v1/datasets/a/vectors/delete?wait=true", json={"ids": ["v0"]})
    await writes.delete("/api/v1/datasets/gone?wait=true")


async def catalog(reads: httpx.AsyncClient) -> list[dict[str, object]]:
    # Timestamps say when a row was written, and a rebuilt row is written anew.
    datasets = (await reads.get("/api/v1/datasets")).json()["datasets"]
    return [{k: v for k, v in d.items() if k not in ("created_at", "updated_at")} for d in datasets]


async def damage_and_rebuild(settings: Settings, reads: httpx.AsyncClient, embedded: bool) -> None:
    before = await catalog(reads)
    assert [d["name"] for d in before] == ["a", "b"] and before[0]["vector_count"] == 4
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            await session.execute(delete(DatasetRow).where(DatasetRow.name == "b"))
            await session.execute(update(DatasetRow).values(vector_count=999, version="wrong"))
        events = embedded_events(sessions) if embedded else kafka_events(settings)
        assert await rebuild_catalog(sessions, events) >= 6
    finally:
        await engine.dispose()
    assert await catalog(reads) == before


async def test_catalog_is_rebuilt_from_the_kafka_event_log(distributed_settings: Settings) -> None:
    async with (
        workers(distributed_settings, "applier", "projector"),
        serving(create_app(distributed_settings, "command-api")) as commands,
        serving(create_app(distributed_settings, "query-api")) as queries,
    ):
        await fill(commands)
        await damage_and_rebuild(distributed_settings, queries, embedded=False)


async def test_catalog_is_rebuilt_from_the_embedded_event_table(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await fill(client)
        await damage_and_rebuild(embedded_settings, client, embedded=True)
