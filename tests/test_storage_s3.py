"""DeepLake on an S3-compatible store through the standard AWS variables, as deploy/compose and
deploy/kubernetes configure it: a real S3Proxy (the version of the compose image, run by `deploy/local/services.sh`
from its Maven Central jar) with its filesystem backend, where a bucket is a folder."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from entrypoints.http_app import create_app
from tests.deploy_tools import ROOT
from tests.helpers import ADMIN_KEY, serving
from tests.kafka_tools import workers
from tests.processes import free_port, serve, tributary_env, wait_ready
from tests.services import S3Service
from tests.test_applier_crashes import until_holding
from tests.test_deploy_compose import resolved_compose
from tests.write_stream import DIMENSIONS, stream_writes, until_no_differences
from tributary.settings import Settings

SERVICES_SH = ROOT / "deploy" / "local" / "services.sh"
DATASET = "on-s3"
KILLS = 3


def test_the_compose_file_runs_the_tested_s3proxy() -> None:
    version = re.search(r"^s3proxy_version=(\S+)$", SERVICES_SH.read_text(), re.MULTILINE)
    assert version is not None
    assert resolved_compose()["services"]["s3"]["image"] == f"andrewgaul/s3proxy:s3proxy-{version[1]}"


# Run in a child process: the AWS variables are the deployment's configuration, and they must not leak into the
# other tests' DeepLake.
ROUND_TRIP = """
import numpy as np
from tributary.storage import Commit, DatasetSpec, DatasetStore
store = DatasetStore(ROOT_URL)
store.create("default", "docs", DatasetSpec(dimensions=4, metric="cosine"), Commit([], []))
writer = store.writer("default", "docs")
writer.upsert(["a", "b", "c"], np.ones((3, 4), dtype=np.float32), None, [{"n": 1}, {}, {}])
writer.commit()
writer.delete(["b"])
writer.commit()
store.forget_all()
reopened = store.writer("default", "docs")
print(reopened.count, store.spec("default", "docs").dimensions, reopened.metadata_of("a"))
"""


def aws_env(s3: S3Service, secret: str | None = None) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key if secret is None else secret,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": "us-east-1",
    }


def run_with_aws(s3: S3Service, secret: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **aws_env(s3, secret)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_datasets_round_trip_through_s3(s3_service: S3Service, run_id: str) -> None:
    # Each run under a prefix of its own: the store outlives test runs.
    root = f"s3://{s3_service.bucket}/{run_id}/datasets"
    result = run_with_aws(s3_service, s3_service.secret_access_key, f"ROOT_URL = {root!r}\n{ROUND_TRIP}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(maxsplit=2) == ["2", "4", "{'n': 1}"]


def test_a_wrong_credential_is_refused(s3_service: S3Service) -> None:
    script = (
        f"from tributary.storage import DatasetStore; DatasetStore('s3://{s3_service.bucket}/datasets')"
        ".exists('t', 'd')"
    )
    result = run_with_aws(s3_service, "not-the-credential", script)
    assert result.returncode != 0
    assert "Access denied" in result.stderr


# What DeepLake on S3 holds against what was acknowledged (tests/write_stream.differences), read in a child
# process with the deployment's AWS variables.
DIFFERENCES = """
import json, sys
from tests.write_stream import Expected, differences
from tributary.settings import Settings
rows = json.load(open(sys.argv[1]))
expected = Expected(rows={vid: (vector, metadata) for vid, (vector, metadata) in rows.items()})
print(json.dumps(differences(Settings(_env_file=None, storage_root=ROOT_URL), DATASET, expected)))
"""


async def test_appliers_killed_mid_commit_on_s3_lose_and_duplicate_nothing(
    distributed_settings: Settings, s3_service: S3Service, run_id: str, tmp_path: Path
) -> None:
    """The datasets themselves on S3 (TRIBUTARY_STORAGE_ROOT=s3://...), so no role shares a disk: the applier is
    SIGKILLed again and again while writes stream in (a DeepLake commit to S3 is many requests, so kills land in
    the middle of them), and a query-api process reads what it applied from S3 alone."""
    root = f"s3://{s3_service.bucket}/{run_id}/datasets"
    settings = distributed_settings.model_copy(update={"storage_root": root})
    assert settings.resolved_storage_root == root
    env = tributary_env(settings, TRIBUTARY_INSTANCE_ID="applier-0", **aws_env(s3_service))
    # The applier is given the root under its other name.
    env["TRIBUTARY_STORAGE_URL"] = env.pop("TRIBUTARY_STORAGE_ROOT")
    log = tmp_path / "applier.log"
    process = serve("applier", env, log)
    kills = 0
    try:
        async with workers(settings, "projector"), serving(create_app(settings, "command-api")) as client:
            created = await client.post(
                "/api/v1/datasets?wait=true", json={"name": DATASET, "dimensions": DIMENSIONS}
            )
            assert created.json()["status"] == "applied", created.text
            # The writes go on until the third kill, so every kill falls in the middle of them.
            killed = asyncio.Event()
            stream = asyncio.ensure_future(
                stream_writes(client, DATASET, requests=24, batch=500, seed=3, until=killed)
            )
            rng = random.Random(5)
            while kills < KILLS:
                await until_holding(log, taken=kills + 1)
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process = serve("applier", env, log)
            killed.set()
            expected = await stream
            acknowledged = tmp_path / "expected.json"
            acknowledged.write_text(json.dumps(expected.rows))

            async def found_differences() -> list[str]:
                script = f"ROOT_URL = {root!r}\nDATASET = {DATASET!r}\n{DIFFERENCES}"
                result = await asyncio.to_thread(
                    run_with_aws, s3_service, s3_service.secret_access_key, script, str(acknowledged)
                )
                assert result.returncode == 0, result.stderr[-3000:]
                return list(json.loads(result.stdout))

            await until_no_differences(found_differences, timeout=180)

        # A query replica with no disk in common with the applier serves the same rows, from S3.
        port = free_port()
        query_log = tmp_path / "query.log"
        query = serve("query-api", tributary_env(settings, **aws_env(s3_service)), query_log, port=port)
        try:
            await asyncio.to_thread(wait_ready, port, query, query_log, 120)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            ) as q:
                counted = await q.post(f"/api/v1/datasets/{DATASET}/count?consistency=strong", json={})
                assert counted.json()["count"] == len(expected.rows), counted.text
        finally:
            query.send_signal(signal.SIGKILL)
            query.wait()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
