"""Private Kafka, PostgreSQL and Redis (and S3Proxy, `private_s3`) for fault tests, started by
`deploy/local/services.sh` in a folder and on ports of their own, so a test can stop and restart them without
disturbing the services every other test shares.

Stopping is what an outage looks like from the clients: the process goes away (SIGTERM, or SIGKILL with
`hard=True`) and its port refuses connections; starting again keeps the data (Kafka's log, PostgreSQL's cluster).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tests.processes import free_port

SERVICES_SH = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"

Service = Literal["kafka", "redis", "postgres"]
# Named to services.sh, which without names would start its Prometheus too (on the shared default port).
SERVICES: tuple[Service, ...] = ("kafka", "redis", "postgres")


@dataclass
class PrivateServices:
    state: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    pg_port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRIBUTARY_SERVICES_DIR": str(self.state),
            "TRIBUTARY_KAFKA_PORT": str(self.kafka_port),
            "TRIBUTARY_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "TRIBUTARY_REDIS_PORT": str(self.redis_port),
            "TRIBUTARY_PG_PORT": str(self.pg_port),
        }

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/tributary"

    def _script(self, *args: str) -> None:
        _run_script(self.env, *args)

    def _pid(self, service: Service) -> int | None:
        pid_file = {
            "kafka": self.state / "kafka" / "kafka.pid",
            "redis": self.state / "redis" / "redis.pid",
            "postgres": self.state / "postgres" / "data" / "postmaster.pid",
        }[service]
        try:
            return int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def up(self) -> None:
        """Start whatever of the three is not running (services.sh up is idempotent) and wait until it answers."""
        self._script("up", *SERVICES)

    def stop(self, service: Service, hard: bool = False) -> None:
        """Take one service away and wait until its process is gone."""
        pid = self._pid(service)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            # PostgreSQL's fast shutdown is SIGINT; SIGTERM waits for every client to leave.
            os.kill(
                pid, signal.SIGKILL if hard else signal.SIGINT if service == "postgres" else signal.SIGTERM
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def down(self) -> None:
        self._script("down", *SERVICES)


@contextlib.contextmanager
def private_services() -> Iterator[PrivateServices]:
    """Kafka, Redis and PostgreSQL of this test alone; all three stopped and their data removed when it ends."""
    # Not under pytest's tmp_path: that is private to root (0700), and PostgreSQL runs as its own user.
    base = Path(tempfile.mkdtemp(prefix="tributary-faults-"))
    base.chmod(0o755)
    services = PrivateServices(
        state=base / "services",
        kafka_port=free_port(),
        controller_port=free_port(),
        redis_port=free_port(),
        pg_port=free_port(),
    )
    services.state.mkdir(parents=True, exist_ok=True)
    # Kafka's jars come from the shared services folder when it has them, instead of a second Maven copy.
    shared_libs = SERVICES_SH.parents[2] / ".services" / "kafka" / "libs"
    if (shared_libs / ".complete").exists():
        (services.state / "kafka").mkdir(parents=True, exist_ok=True)
        (services.state / "kafka" / "libs").symlink_to(shared_libs, target_is_directory=True)
    with _up_until_done(services, base):
        yield services


@dataclass
class PrivateS3:
    state: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TRIBUTARY_SERVICES_DIR": str(self.state), "TRIBUTARY_S3_PORT": str(self.port)}

    def aws_env(self) -> dict[str, str]:
        """The standard AWS variables that reach it, from what `services.sh env` says it accepts."""
        done = subprocess.run(
            ["bash", str(SERVICES_SH), "env"], env=self.env, capture_output=True, text=True, check=True
        )
        told = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines())
        return {
            "AWS_ACCESS_KEY_ID": told["TRIBUTARY_TEST_S3_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": told["TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY"],
            "AWS_ENDPOINT_URL": told["TRIBUTARY_TEST_S3_ENDPOINT"],
            "AWS_REGION": "us-east-1",
        }

    def up(self) -> None:
        _run_script(self.env, "up", "s3")

    def down(self) -> None:
        _run_script(self.env, "down", "s3")


def _run_script(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        ["bash", str(SERVICES_SH), *args], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"services.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")


@contextlib.contextmanager
def private_s3() -> Iterator[PrivateS3]:
    """An S3Proxy of this test alone (its bucket `tributary`), stopped and its data removed when it ends."""
    base = Path(tempfile.mkdtemp(prefix="tributary-s3-"))
    store = PrivateS3(state=base / "services", port=free_port())
    # The jar comes from the shared services folder when it has it, instead of a second Maven copy.
    shared = SERVICES_SH.parents[2] / ".services" / "s3proxy"
    (store.state / "s3proxy").mkdir(parents=True)
    for jar in shared.glob("s3proxy-*-jar-with-dependencies.jar"):
        (store.state / "s3proxy" / jar.name).symlink_to(jar)
    with _up_until_done(store, base):
        yield store


class _Started(Protocol):
    def up(self) -> None: ...
    def down(self) -> None: ...


@contextlib.contextmanager
def _up_until_done(started: _Started, base: Path) -> Iterator[None]:
    """Up for the block; then stopped and `base`, the folder of its data, removed."""
    try:
        started.up()
        yield
    finally:
        started.down()
        shutil.rmtree(base, ignore_errors=True)
