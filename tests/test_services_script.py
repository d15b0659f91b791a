"""deploy/local/services.sh as a new user meets it: a port another program holds, a service that dies while
starting, one service at a time. Always a private state folder and spare ports: the shared services of the
default ports are never touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import eventually
from tests.processes import free_port

SCRIPT = Path(__file__).parents[1] / "deploy/local/services.sh"


class Services:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.ports = {
            "TRIBUTARY_KAFKA_PORT": free_port(),
            "TRIBUTARY_KAFKA_CONTROLLER_PORT": free_port(),
            "TRIBUTARY_REDIS_PORT": free_port(),
            "TRIBUTARY_PG_PORT": free_port(),
            "TRIBUTARY_PROMETHEUS_PORT": free_port(),
            "TRIBUTARY_S3_PORT": free_port(),
        }

    def run(self, *args: str, **ports: int) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"TRIBUTARY_SERVICES_DIR": str(self.state)}
        env |= {name: str(port) for name, port in (self.ports | ports).items()}
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    def status(self) -> dict[str, str]:
        lines = self.run("status").stdout.splitlines()
        return {line.split(":")[0].split()[0]: line.split(": ", 1)[1] for line in lines}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = Services(tmp_path / "services")
    yield services
    services.run("down")


@pytest.fixture
def foreign_listener() -> Iterator[int]:
    """Another program's server on a spare port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_refused_in_one_line_and_nothing_of_ours_runs(
    services: Services, foreign_listener: int
) -> None:
    answer = services.run("up", "redis", "postgres", TRIBUTARY_PG_PORT=foreign_listener)
    assert answer.returncode != 0
    (line,) = answer.stderr.splitlines()
    assert f"port {foreign_listener} is taken by another program" in line and "TRIBUTARY_PG_PORT" in line
    # Refused before anything started: Redis, first in line, is not running either.
    assert services.status()["redis"] == "stopped"
    assert not (services.state / "redis" / "redis.pid").exists()
    status = services.run("status", TRIBUTARY_PG_PORT=foreign_listener).stdout
    assert f"postgresql: stopped (port {foreign_listener} is taken by another program)" in status
    with socket.create_connection(("127.0.0.1", foreign_listener)):
        pass  # and the other program's server is untouched


def test_one_service_goes_up_and_down_alone(services: Services) -> None:
    started = services.run("up", "redis")
    assert started.returncode == 0, started.stderr
    assert services.status() == {
        "kafka": "stopped",
        "redis": f"running on 127.0.0.1:{services.ports['TRIBUTARY_REDIS_PORT']}",
        "postgresql": "stopped",
        "prometheus": "stopped",
        "s3proxy": "stopped",
    }
    again = services.run("up", "redis")
    assert again.returncode == 0 and "already running" in again.stderr
    assert services.run("down", "redis").returncode == 0
    assert services.status()["redis"] == "stopped"


async def test_prometheus_scrapes_the_targets_a_file_names(services: Services, foreign_listener: int) -> None:
    started = services.run("up", "prometheus")
    assert started.returncode == 0, started.stderr
    port = services.ports["TRIBUTARY_PROMETHEUS_PORT"]
    assert services.status()["prometheus"] == f"running on 127.0.0.1:{port}"
    variables = dict(
        line.removeprefix("export ").split("=", 1) for line in services.run("env").stdout.splitlines()
    )
    assert variables["TRIBUTARY_TEST_PROMETHEUS_URL"] == f"http://127.0.0.1:{port}"
    targets = Path(variables["TRIBUTARY_TEST_PROMETHEUS_TARGETS"])
    (targets / "test.json").write_text(json.dumps([{"targets": [f"127.0.0.1:{foreign_listener}"]}]))

    async def discovered() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient() as client:
            answer = (await client.get(f"http://127.0.0.1:{port}/api/v1/targets")).json()
        return answer["data"]["activeTargets"] or None

    (target,) = await eventually(discovered, timeout=60)
    assert target["labels"] == {"instance": f"127.0.0.1:{foreign_listener}", "job": "tributary"}
    assert services.run("down", "prometheus").returncode == 0
    assert services.status()["prometheus"] == "stopped"


def test_a_service_that_dies_while_starting_is_reported_at_once_in_one_line(services: Services) -> None:
    answer = services.run("up", "redis", TRIBUTARY_REDIS_PORT=99999)  # redis-server refuses the port
    assert answer.returncode != 0
    failure = answer.stderr.splitlines()[-1]
    log = services.state / "redis" / "redis.log"
    assert failure.startswith("[services] redis exited during startup:") and failure.endswith(f"see {log}")
    assert "FATAL CONFIG FILE ERROR" in failure  # the line of the log that says why
    assert services.status()["redis"] == "stopped"


def test_an_unknown_service_is_refused(services: Services) -> None:
    answer = services.run("up", "zookeeper")
    assert answer.returncode == 2 and "unknown service zookeeper" in answer.stderr


def test_s3proxy_goes_up_and_down_alone_and_env_names_it(services: Services) -> None:
    port = services.ports["TRIBUTARY_S3_PORT"]
    started = services.run("up", "s3")
    assert started.returncode == 0, started.stderr
    assert services.status()["s3proxy"] == f"running on 127.0.0.1:{port}"
    assert services.status()["redis"] == "stopped"
    again = services.run("up", "s3")
    assert again.returncode == 0 and "s3proxy already running" in again.stderr
    env = services.run("env").stdout
    assert f"export TRIBUTARY_TEST_S3_ENDPOINT=http://127.0.0.1:{port}" in env
    assert "export TRIBUTARY_TEST_S3_BUCKET=tributary" in env
    # It serves the bucket, in S3's own XML.
    answer = subprocess.run(
        ["curl", "-s", f"http://127.0.0.1:{port}/tributary"], capture_output=True, text=True, check=False
    )
    assert "<Name>tributary</Name>" in answer.stdout
    assert services.run("down", "s3").returncode == 0
    assert services.status()["s3proxy"] == "stopped"


def test_a_foreign_server_on_the_s3_port_is_not_taken_for_s3proxy(
    services: Services, foreign_listener: int
) -> None:
    answer = services.run("up", "s3", TRIBUTARY_S3_PORT=foreign_listener)
    assert answer.returncode != 0
    assert f"port {foreign_listener} is taken by another program" in answer.stderr
    assert "TRIBUTARY_S3_PORT" in answer.stderr
    status = services.run("status", TRIBUTARY_S3_PORT=foreign_listener).stdout
    assert f"s3proxy: stopped (port {foreign_listener} is taken by another program)" in status
    assert services.run("down", "s3", TRIBUTARY_S3_PORT=foreign_listener).returncode == 0
    with socket.create_connection(("127.0.0.1", foreign_listener)):
        pass  # `down` left the other program's server alone
