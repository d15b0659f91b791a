"""Real `tributary serve` processes for tests, configured like an in-process app of the same settings."""

from __future__ import annotations

import asyncio
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
    if settings.backup_encryption_key is not None:
        env["TRIBUTARY_BACKUP_ENCRYPTION_KEY"] = settings.backup_encryption_key.get_secret_value()
    if settings.backup_s3_endpoint is not None:
        env["TRIBUTARY_BACKUP_S3_ENDPOINT"] = settings.backup_s3_endpoint
    if settings.backup_s3_region is not None:
        env["TRIBUTARY_BACKUP_S3_REGION"] = settings.backup_s3_region
    return env | extra


async def tributary_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`tributary <args>` on the server's machine, with the settings' variables (run in a thread, so a server on
    this event loop keeps answering)."""
    env = {name: value for name, value in tributary_env(settings).items() if value}
    if settings.database_url is None:
        del env["TRIBUTARY_DATABASE_URL"]  # embedded mode's own SQLite file, found under the data directory
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tributary", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


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
