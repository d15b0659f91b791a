"""An applier killed (SIGKILL, a real process) while it takes a snapshot and while it restores one: after the
restart each completes, wherever the kill fell, and a snapshot copied half way is never listed."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from entrypoints.http_app import create_app
from tests.helpers import eventually, serving
from tests.kafka_tools import workers
from tests.processes import serve, tributary_env
from tributary.settings import Settings

DIMS = 128
ROWS = 40_000


def applier(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = tributary_env(
        settings, TRIBUTARY_INSTANCE_ID="applier-0", TRIBUTARY_BACKUP_URL=str(settings.resolved_backup_url)
    )
    return serve("applier", env, log)


def finished(log: Path) -> int:
    """How many snapshots and restores the applier logged as done."""
    return log.read_text(errors="replace").count("workers.snapshots")


async def outcome(client: httpx.AsyncClient, operation_id: str) -> dict[str, Any] | None:
    body = (await client.get(f"/api/v1/operations/{operation_id}")).json()
    return dict(body) if body.get("status") in ("applied", "rejected") else None


async def strong(reads: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A strong read: it waits for the applier's committed offsets, so a 504 while the restarted applier starts is
    asked again."""

    async def answered() -> dict[str, Any] | None:
        answer = await reads.post(f"{path}?consistency=strong", json=body)
        assert answer.status_code in (200, 504), answer.text
        return dict(answer.json()) if answer.status_code == 200 else None

    return await eventually(answered, timeout=180)


async def killed_during(
    client: httpx.AsyncClient,
    reads: httpx.AsyncClient,
    settings: Settings,
    log: Path,
    processes: list[subprocess.Popen[bytes]],
    path: str,
    seed: int,
) -> str:
    """Submit the write at `path`, SIGKILL the applier at a random moment while it works, restart it, and wait
    for the write's outcome."""
    done_before = await asyncio.to_thread(finished, log)
    answer = await client.post(path)
    assert answer.status_code == 202, answer.text
    operation_id = str(answer.json()["operation_id"])
    await asyncio.sleep(random.Random(seed).uniform(0.05, 1.2))
    done_now = await asyncio.to_thread(finished, log)
    processes[-1].send_signal(signal.SIGKILL)
    processes[-1].wait()
    # Either way the outcome must be the same; printed so a run shows where its kills fell.
    print(f"{path}: killed {'after' if done_now > done_before else 'before'} the applier finished it")
    processes.append(applier(settings, log))
    done = await eventually(lambda: outcome(reads, operation_id), timeout=180, every=0.2)
    assert done["status"] == "applied", done
    return operation_id


async def test_a_snapshot_and_a_restore_survive_a_sigkilled_applier(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    settings = distributed_settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    log = tmp_path / "applier.log"
    processes = [applier(settings, log)]
    rng = np.random.default_rng(3)
    try:
        async with (
            workers(settings, "projector"),
            serving(create_app(settings, "command-api")) as commands,
            serving(create_app(settings, "query-api")) as reads,
        ):
            created = await commands.post(
                "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": DIMS}
            )
            assert created.status_code == 200, created.text
            for start in range(0, ROWS, 5000):
                batch = [
                    {"id": f"v{start + i}", "vector": rng.normal(size=DIMS).tolist()} for i in range(5000)
                ]
                written = await commands.post(
                    "/api/v1/datasets/docs/vectors?wait=true", json={"vectors": batch}
                )
                assert written.status_code == 200, written.text
            # Every 100th record and the two deleted later, compared exactly (a search is approximate, and an index
            # loaded again is not the one built by increments).
            sample = {"ids": [f"v{i}" for i in range(0, ROWS, 100)] + ["v1", "v2"], "include": ["vector"]}
            before = await strong(reads, "/api/v1/datasets/docs/vectors/get", sample)
            assert len(before["results"]) == len(sample["ids"])

            snapshot_id = await killed_during(
                commands, reads, settings, log, processes, "/api/v1/datasets/docs/snapshots", seed=1
            )
            listed = (await reads.get("/api/v1/datasets/docs/snapshots")).json()["snapshots"]
            assert [(s["snapshot_id"], s["vector_count"]) for s in listed] == [(snapshot_id, ROWS)]

            deleted = await commands.post(
                "/api/v1/datasets/docs/vectors/delete?wait=true", json={"ids": ["v1", "v2"]}
            )
            assert deleted.status_code == 200, deleted.text
            await killed_during(
                commands,
                reads,
                settings,
                log,
                processes,
                f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore",
                seed=2,
            )
            count = await strong(reads, "/api/v1/datasets/docs/count", {})
            assert count["count"] == ROWS
            after = await strong(reads, "/api/v1/datasets/docs/vectors/get", sample)
            assert after["results"] == before["results"]
    finally:
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait()
