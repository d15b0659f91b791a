"""SIGKILL of each distributed role in turn (real processes) under a light write load: no acknowledged write
is lost, none is stored twice, and each role is ready again by itself (the time is printed). At the end every
role stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.cluster import ROLES, Cluster
from tests.helpers import ADMIN_KEY, eventually
from tests.write_stream import stored_rows
from tributary.settings import Settings

pytestmark = pytest.mark.kafka

DIMS = 8
BATCH = 20
RUNNING_BETWEEN_KILLS_S = 3.0


class Writer:
    """Upserts BATCH fresh ids about five times a second; remembers which were acknowledged (202) and which
    were sent at all (a request cut off by a kill may or may not have been published)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self.acknowledged: set[str] = set()
        self.sent: set[str] = set()
        self.refused = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        rng = np.random.default_rng(3)
        n = 0
        while not self._stop.is_set():
            ids = [f"k{n}-{i}" for i in range(BATCH)]
            n += 1
            body = {"vectors": [{"id": i, "vector": rng.standard_normal(DIMS).tolist()} for i in ids]}
            self.sent.update(ids)
            try:
                answer = await self._client.post("/api/v1/datasets/kills/vectors", json=body)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 202:
                self.acknowledged.update(ids)
            else:
                self.refused += 1
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


async def test_sigkill_of_each_role_loses_and_duplicates_nothing(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    cluster = Cluster(distributed_settings, tmp_path)
    try:
        await asyncio.to_thread(cluster.start_all)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with (
            httpx.AsyncClient(base_url=cluster.url("command-api"), headers=headers, timeout=30) as command,
            httpx.AsyncClient(base_url=cluster.url("query-api"), headers=headers, timeout=30) as query,
        ):
            created = await command.post(
                "/api/v1/datasets?wait=true", json={"name": "kills", "dimensions": DIMS}
            )
            assert created.json()["status"] == "applied", created.text
            writer = Writer(command)
            writing = asyncio.create_task(writer.run())
            ready_again = {}
            for role in ROLES:
                await asyncio.sleep(RUNNING_BETWEEN_KILLS_S)
                await asyncio.to_thread(cluster.signal, role, signal.SIGKILL)
                killed = time.monotonic()
                cluster.start(role)
                await asyncio.to_thread(cluster.wait_ready, role, 180)
                ready_again[role] = time.monotonic() - killed
            await asyncio.sleep(RUNNING_BETWEEN_KILLS_S)
            writer.stop()
            await writing

            async def all_stored() -> list[str] | None:
                ids = (await asyncio.to_thread(stored_rows, distributed_settings, "kills"))[0]
                return ids if writer.acknowledged <= set(ids) else None

            stored = await eventually(all_stored, timeout=180, every=0.5)

            async def visible() -> int | None:
                answer = await query.post("/api/v1/datasets/kills/count?consistency=strong", json={})
                count = int(answer.json()["count"]) if answer.status_code == 200 else -1
                return count if count == len(set(stored)) else None

            await eventually(visible, timeout=120, every=0.5)
        duplicated = len(stored) - len(set(stored))
        print(
            f"\nwrites: {len(writer.acknowledged)} vectors acknowledged, {writer.refused} requests refused or cut "
            f"off; stored {len(stored)}: 0 lost, {duplicated} duplicated, "
            f"{len(set(stored) - writer.acknowledged)} stored from requests cut off before their answer"
        )
        for role, seconds in ready_again.items():
            print(f"  {role}: ready again {seconds:.1f} s after SIGKILL")
        assert duplicated == 0
        assert set(stored) <= writer.sent
        exits = {role: await asyncio.to_thread(cluster.signal, role, signal.SIGTERM) for role in ROLES}
        print(f"exit codes on SIGTERM: {exits}")
        # uvicorn finishes its shutdown (lifespan included), then raises the signal it caught again, so the
        # HTTP roles end "killed by SIGTERM" after a clean stop.
        assert exits == {"command-api": -15, "query-api": -15, "applier": 0, "projector": 0}
        for role in ("command-api", "query-api"):
            assert (
                "Application shutdown complete"
                in cluster.log(role).read_text().rsplit("Started server", 1)[1]
            )
    finally:
        cluster.stop_all()
