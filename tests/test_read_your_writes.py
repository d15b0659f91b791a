"""Read-your-writes: after any interleaving of upserts and deletes, a `session` read carrying a write's token
sees that write, and a deleted id appears in no result after its delete. Embedded mode under hypothesis;
Kafka (command API, applier, event log, query replica) under seeded random scripts."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.http_app import create_app
from tests.helpers import ADMIN_KEY, serving
from tests.kafka_tools import workers
from tests.processes import free_port, serve, tributary_env, wait_ready
from tributary.settings import Settings

DIMS = 4
IDS = [f"id{i}" for i in range(6)]

Op = tuple[str, str, list[float]]
ops = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "delete"]),
        st.sampled_from(IDS),
        st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=DIMS, max_size=DIMS).filter(
            lambda v: any(abs(x) > 1e-3 for x in v)
        ),
    ),
    min_size=1,
    max_size=12,
)


async def check_script(
    writes: httpx.AsyncClient, reads: httpx.AsyncClient, dataset: str, script: list[Op]
) -> None:
    alive: dict[str, list[float]] = {}
    for action, vector_id, vector in script:
        if action == "upsert":
            answer = await writes.post(
                f"/api/v1/datasets/{dataset}/vectors", json={"vectors": [{"id": vector_id, "vector": vector}]}
            )
            alive[vector_id] = list(np.asarray(vector, dtype=np.float32).tolist())
        else:
            answer = await writes.post(
                f"/api/v1/datasets/{dataset}/vectors/delete", json={"ids": [vector_id]}
            )
            alive.pop(vector_id, None)
        assert answer.status_code == 202, answer.text
        session = f"consistency=session&token={answer.json()['consistency_token']}"
        found = await reads.post(
            f"/api/v1/datasets/{dataset}/search?{session}",
            json={"vector": [1.0, 0.5, -0.5, 0.25], "k": len(IDS), "include": ["vector"]},
        )
        assert found.status_code == 200, found.text
        seen = {r["id"]: r["vector"] for r in found.json()["results"]}
        assert seen == alive, f"after {action} {vector_id}: saw {sorted(seen)}, expected {sorted(alive)}"
        one = await reads.get(f"/api/v1/datasets/{dataset}/vectors/{vector_id}?{session}")
        assert one.status_code == (200 if vector_id in alive else 404)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops)
def test_read_your_writes_in_embedded_mode(tmp_path: Path, script: list[Op]) -> None:
    async def run() -> None:
        data = tmp_path / uuid.uuid4().hex  # not `random`: hypothesis seeds it the same for every example
        app = create_app(Settings(_env_file=None, data_dir=data, wait_timeout_s=20, admin_key=ADMIN_KEY))  # type: ignore[call-arg]
        async with serving(app) as client:
            await client.post("/api/v1/datasets?wait=true", json={"name": "ryw", "dimensions": DIMS})
            await check_script(client, client, "ryw", script)

    asyncio.run(run())


async def test_read_your_writes_through_kafka(distributed_settings: Settings) -> None:
    settings_ = distributed_settings
    async with (
        workers(settings_, "applier", "projector"),
        serving(create_app(settings_, "command-api")) as commands,
        serving(create_app(settings_, "query-api")) as queries,
    ):
        for seed in range(6):
            rng = random.Random(seed)
            dataset = f"ryw{seed}"
            created = await commands.post(
                "/api/v1/datasets?wait=true", json={"name": dataset, "dimensions": DIMS}
            )
            assert created.json()["status"] == "applied"
            script = [
                (
                    rng.choice(["upsert", "upsert", "delete"]),
                    rng.choice(IDS),
                    [rng.uniform(-1, 1) for _ in range(DIMS)],
                )
                for _ in range(10)
            ]
            await check_script(commands, queries, dataset, script)


async def test_every_process_of_a_multi_worker_query_api_reads_your_writes(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "query-api.log"
    replica = serve("query-api", tributary_env(distributed_settings), log, port, workers=2)
    try:
        await asyncio.to_thread(wait_ready, port, replica, log)
        async with (
            workers(distributed_settings, "applier", "projector"),
            serving(create_app(distributed_settings, "command-api")) as commands,
            # A new connection a request: the kernel hands them to either worker process.
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                limits=httpx.Limits(max_keepalive_connections=0),
                timeout=30,
            ) as queries,
        ):
            created = await commands.post(
                "/api/v1/datasets?wait=true", json={"name": "multi", "dimensions": DIMS}
            )
            assert created.json()["status"] == "applied"
            rng = random.Random(7)
            script = [
                (
                    rng.choice(["upsert", "upsert", "delete"]),
                    rng.choice(IDS),
                    [rng.uniform(-1, 1) for _ in range(DIMS)],
                )
                for _ in range(20)
            ]
            await check_script(commands, queries, "multi", script)
    finally:
        replica.terminate()
        replica.wait(timeout=30)
    assert log.read_text().count("Application startup complete") == 2
