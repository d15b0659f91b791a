"""A real `tributary serve` for the client tests: embedded mode (one process), or the distributed roles over
Kafka, PostgreSQL and Redis."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ADMIN_KEY
from tests.processes import free_port, serve, tributary_env, wait_ready
from tributary.settings import Settings


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def embedded_url(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    env |= {"TRIBUTARY_DATA_DIR": str(tmp_path / "data"), "TRIBUTARY_ADMIN_KEY": ADMIN_KEY}
    port, log = free_port(), tmp_path / "embedded.log"
    server = serve("embedded", env, log, port)
    try:
        wait_ready(port, server, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop([server])


@pytest.fixture
def kafka_url(distributed_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """One HTTP port for the client: the command API; reads go to the query API through `read_url`."""
    env = tributary_env(distributed_settings)
    command_port, query_port = free_port(), free_port()
    processes = [
        serve("applier", env, tmp_path / "applier.log"),
        serve("projector", env, tmp_path / "projector.log"),
        serve("command-api", env, tmp_path / "command.log", command_port),
        serve("query-api", env, tmp_path / "query.log", query_port),
    ]
    try:
        wait_ready(command_port, processes[2], tmp_path / "command.log")
        wait_ready(query_port, processes[3], tmp_path / "query.log")
        yield f"http://127.0.0.1:{command_port} http://127.0.0.1:{query_port}"
    finally:
        _stop(processes)
