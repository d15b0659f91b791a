"""The dataset storage going away: DeepLake on an S3Proxy of this test's own, stopped while writes come in. The
writes are accepted, a read that needs the store answers 503, and once the store is back every write is applied
and none was dead-lettered (however many deliveries failed meanwhile: workers/isolation.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.faults import private_s3
from tests.helpers import ADMIN_KEY, eventually
from tests.processes import free_port, serve, wait_ready

BATCHES_IN_OUTAGE = 3


async def test_writes_during_a_storage_outage_are_applied_when_it_ends(tmp_path: Path, run_id: str) -> None:
    with private_s3() as store:
        port = free_port()
        log = tmp_path / "server.log"
        env = {
            **store.env,
            **store.aws_env(),
            "TRIBUTARY_DATA_DIR": str(tmp_path / "data"),
            "TRIBUTARY_STORAGE_URL": f"s3://tributary/{run_id}/datasets",
            "TRIBUTARY_ADMIN_KEY": ADMIN_KEY,
        }
        server = serve("embedded", env, log, port)
        try:
            await asyncio.to_thread(wait_ready, port, server, log)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=300,
            ) as client:

                async def write(batch: int, wait: bool = False) -> None:
                    records = [{"id": f"{batch}-{i}", "vector": [1.0, i, batch, 0.5]} for i in range(10)]
                    answer = await client.post(
                        f"/api/v1/datasets/d/vectors?wait={str(wait).lower()}", json={"vectors": records}
                    )
                    assert answer.status_code in (200, 202), answer.text

                created = await client.post("/api/v1/datasets?wait=true", json={"name": "d", "dimensions": 4})
                assert created.status_code == 200, created.text
                await write(0, wait=True)

                await asyncio.to_thread(store.down)
                for batch in range(1, 1 + BATCHES_IN_OUTAGE):
                    await write(batch)
                # DeepLake's own retries take about 40 s before it says the store does not answer.
                history = await client.get("/api/v1/datasets/d/versions")
                assert history.status_code == 503, history.text
                assert "the dataset storage is unavailable" in history.text
                assert "retry-after" in history.headers
                await asyncio.to_thread(store.up)

                async def all_applied() -> int | None:
                    counted = await client.post("/api/v1/datasets/d/count?consistency=strong", json={})
                    if counted.status_code == 200 and counted.json()["count"] == 10 * (1 + BATCHES_IN_OUTAGE):
                        return 1
                    return None

                await eventually(all_applied, timeout=300, every=1)
                letters = await client.get("/api/v1/admin/dead-letters")
                assert letters.json()["dead_letters"] == []
                assert (await client.get("/api/v1/datasets/d/versions")).status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=60)
