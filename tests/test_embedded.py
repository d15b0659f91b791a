"""Embedded mode: one process, no servers, the same contracts; an acknowledged command survives a crash."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from entrypoints.bootstrap import ADMIN_KEY_FILE
from entrypoints.embedded_bus import EmbeddedBus
from entrypoints.http_app import create_app
from events import CreateDataset, CreateDatasetPayload, DatasetCreated
from tests.helpers import serving
from tests.processes import free_port
from tributary.bus import EncodedCommand
from tributary.db.migrate import upgrade
from tributary.db.session import engine_for, make_sessionmaker
from tributary.deeplake_lib import deeplake
from tributary.settings import Settings
from tributary.storage import DatasetStore


async def test_create_dataset_in_embedded_mode(embedded_settings: Settings) -> None:
    app = create_app(embedded_settings)
    async with serving(app) as client:
        assert (await client.get("/api/v1/datasets/docs")).status_code == 404
        answer = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 4})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "applied"
        dataset = (await client.get("/api/v1/datasets/docs")).json()
        assert (dataset["dimensions"], dataset["metric"]) == (4, "cosine")
        listed = (await client.get("/api/v1/datasets")).json()["datasets"]
        assert [d["name"] for d in listed] == ["docs"]
        events = await app.state.services.publisher.events()
        assert [type(e) for _, e in events] == [DatasetCreated]
        bad = await client.post("/api/v1/datasets", json={"name": "x", "dimensions": 70000})
        assert bad.status_code == 422 and "dimensions" in bad.text
    assert deeplake.exists(f"{embedded_settings.resolved_storage_root}/default/docs")


async def test_acknowledged_command_is_applied_after_a_crash_before_applying(
    embedded_settings: Settings,
) -> None:
    embedded_settings.data_dir.mkdir(parents=True)
    engine = engine_for(embedded_settings)
    await upgrade(engine)
    # The bus logs the command and acknowledges it, and the process "dies" before the applier runs.
    stopped = EmbeddedBus(
        make_sessionmaker(engine),
        DatasetStore(embedded_settings.resolved_storage_root),
        embedded_settings.default_tenant,
    )
    command = CreateDataset(tenant="default", dataset="kept", payload=CreateDatasetPayload(dimensions=3))
    token = await stopped.publish([EncodedCommand.of(command)])
    await engine.dispose()

    app = create_app(embedded_settings)
    async with serving(app) as client:
        assert await app.state.services.publisher.wait_applied(token, timeout=20)
        assert (await client.get("/api/v1/datasets/kept")).status_code == 200
        operation = await client.get(f"/api/v1/operations/{command.id}")
        assert operation.json()["status"] == "applied"


def start_server(data_dir: Path, port: int, output: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TRIBUTARY_ADMIN_KEY"} | {
        "TRIBUTARY_DATA_DIR": str(data_dir)
    }
    with output.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tributary", "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("tributary serve did not come up")


def test_served_dataset_survives_a_kill_and_restart(tmp_path: Path) -> None:
    data_dir, port, output = tmp_path / "tributary-data", free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}/api/v1"
    server = start_server(data_dir, port, output)
    try:
        # With no TRIBUTARY_ADMIN_KEY, the first start makes an admin key and, as its stdout is no terminal,
        # writes it to a file only its user may read, never to the log.
        key_file = data_dir / ADMIN_KEY_FILE
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(re.findall("made an admin key", output.read_text())) == 1, output.read_text()
        assert key.startswith("trb_") and key not in output.read_text()
        key_file.unlink()
        # The migrations it applied are not news.
        assert "alembic" not in output.read_text()
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/datasets").status_code == 401
        answer = httpx.post(
            f"{base}/datasets", json={"name": "docs", "dimensions": 384, "metric": "cosine"}, headers=auth
        )
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/datasets/docs", headers=auth).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert deeplake.exists(str(data_dir / "datasets" / "default" / "docs"))

    server = start_server(data_dir, port, output)
    try:
        assert len(re.findall("admin key", output.read_text())) == 1, "made once, never again"
        assert not key_file.exists()
        dataset = httpx.get(f"{base}/datasets/docs", headers=auth)
        assert dataset.status_code == 200 and dataset.json()["dimensions"] == 384
    finally:
        server.terminate()
        server.wait(timeout=30)
