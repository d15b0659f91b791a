"""The stream-consumer helper (`tributary.stream`) through real Kafka: the worked example of the docs (react to
`VectorsUpserted`) against the distributed roles, written to with the SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from tributary_client import AsyncTributary

from events import DatasetCreated, DomainEvent, VectorsUpserted
from tests.helpers import ADMIN_KEY
from tributary.settings import Settings
from tributary.stream import EventStream

DIMENSIONS = 4


class Done(Exception):
    """Ends a `run` once the test saw what it waited for."""


async def upserted_ids(stream: EventStream, count: int, *, commit: bool) -> list[str]:
    """The ids of `VectorsUpserted` events until `count` were seen, committing each event or not."""
    ids: list[str] = []
    async with asyncio.timeout(60):
        async for event in stream:
            if isinstance(event, VectorsUpserted):
                ids.extend(event.payload.ids)
            if commit:
                await stream.commit()
            if len(ids) >= count:
                return ids
    raise AssertionError("the stream ended")


async def test_react_to_vectors_upserted_at_least_once(
    kafka_url: str, distributed_settings: Settings
) -> None:
    command_url, query_url = kafka_url.split()
    bootstrap, prefix = distributed_settings.kafka_bootstrap, distributed_settings.topic_prefix
    rng = np.random.default_rng(0)

    def batch(start: int) -> list[dict[str, Any]]:
        return [{"id": f"v{i}", "vector": rng.random(DIMENSIONS)} for i in range(start, start + 3)]

    async with AsyncTributary(command_url, ADMIN_KEY, read_url=query_url) as client:
        await client.create_dataset("docs", DIMENSIONS)
        await client.upsert("docs", batch(0), wait=True)

        # Read without committing, then stop: the group is given the same events again.
        async with EventStream(bootstrap, "mirror", topic_prefix=prefix) as stream:
            assert await upserted_ids(stream, 3, commit=False) == ["v0", "v1", "v2"]
        async with EventStream(bootstrap, "mirror", topic_prefix=prefix) as stream:
            assert await upserted_ids(stream, 3, commit=True) == ["v0", "v1", "v2"]

        # Committed: the next member of the group starts after them, at the next write.
        await client.upsert("docs", batch(3), wait=True)
        async with EventStream(bootstrap, "mirror", topic_prefix=prefix) as stream:
            assert await upserted_ids(stream, 3, commit=True) == ["v3", "v4", "v5"]

    # `run`: a handler that fails leaves its event uncommitted, so it is delivered again.
    seen: list[DomainEvent] = []

    async def fragile(event: DomainEvent) -> None:
        seen.append(event)
        if isinstance(event, DatasetCreated) and len(seen) == 1:
            raise RuntimeError("the mirror is down")
        if isinstance(event, VectorsUpserted) and event.payload.ids[0] == "v3":
            raise Done

    for _ in range(2):
        try:
            async with EventStream(bootstrap, "run-group", topic_prefix=prefix) as stream:
                async with asyncio.timeout(60):
                    await stream.run(fragile)
        except (RuntimeError, Done):
            pass
    kinds = [event.type for event in seen]
    assert kinds == ["DatasetCreated", "DatasetCreated", "VectorsUpserted", "VectorsUpserted"]
