"""Real `tributary serve` processes for tests, configured like an in-process app of the same settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tributary.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tributary_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TRIBUTARY_DATA_DIR": str(settings.data_dir),
        "TRIBUTARY_STORAGE_ROOT": settings.resolved_storage_root,
        "TRIBUTARY_DATABASE_URL": settings.resolved_database_url,
        "TRIBUTARY_DATABASE_SCHEMA": settings.database_schema or "",
        "TRIBUTARY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TRIBUTARY_TOPIC_PREFIX": settings.topic_prefix,
        "TRIBUTARY_COMMAND_PARTITIONS": str(settings.command_partitions),
        "TRIBUTARY_REDIS_URL": settings.redis_url or "",
    }
    if settings.admin_key is not None:
        env["TRIBUTARY_ADMIN_KEY"] = settings.admin_key.get_secret_value()
    return env | extra


def serve(
    role: str, env: dict[str, str], log: Path, port: int | None = None, workers: int = 1
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tributary", "serve", "--role", role, "--workers", str(workers)]
    if port is not None:
        args += ["--port", str(port)]
    if role in ("embedded", "command-api", "query-api"):
        # Side by side, the processes of the tests must not all take the default gRPC port.
        args += ["--grpc-port", env.get("TRIBUTARY_GRPC_PORT", "0")]
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=out)


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"the process on port {port} exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"nothing ready on port {port}")
