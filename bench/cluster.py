"""Real `tributary serve` processes for the benchmarks: the Kafka deployment (command-api, query-api, applier,
projector against the local services) or embedded mode (one process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from tributary.auth.keys import new_key

# The operator key of the benchmark's deployment; clients send ADMIN_HEADERS.
ADMIN_KEY = new_key().key
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The gRPC ports of kafka_mode's command-api and query-api (embedded_mode: EMBEDDED_GRPC).
COMMAND_GRPC, QUERY_GRPC, EMBEDDED_GRPC = "127.0.0.1:18190", "127.0.0.1:18191", "127.0.0.1:18192"


class Processes:
    """`tributary` processes by name, each logging to a file under `log_dir`."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: dict[str, tuple[subprocess.Popen[bytes], list[str], dict[str, str]]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str], module: str = "tributary") -> None:
        """`module`: what `python -m` runs, `tributary` or a benchmark's variant of it (bench/unmetered.py)."""
        with (self._log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=log, stderr=log)
        self._running[name] = (process, args, env)

    def pid(self, name: str) -> int:
        return self._running[name][0].pid

    def stop(self, name: str, timeout: float = 30) -> tuple[list[str], dict[str, str]]:
        process, args, env = self._running.pop(name)
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
        return args, env

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)


@contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    running = Processes(log_dir)
    try:
        yield running
    finally:
        running.stop_all()


async def ready(url: str, timeout: float = 60) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(int(timeout * 10)):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


@asynccontextmanager
async def kafka_mode(
    work: Path, query_workers: int = 1, redis: bool = False
) -> AsyncIterator[tuple[str, str, Processes]]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TRIBUTARY_DATA_DIR": str(work),
        "TRIBUTARY_DATABASE_URL": os.environ["TRIBUTARY_TEST_DATABASE_URL"],
        "TRIBUTARY_DATABASE_SCHEMA": prefix,
        "TRIBUTARY_KAFKA_BOOTSTRAP": os.environ["TRIBUTARY_TEST_KAFKA_BOOTSTRAP"],
        "TRIBUTARY_TOPIC_PREFIX": prefix,
        "TRIBUTARY_ADMIN_KEY": ADMIN_KEY,
    }
    if redis:
        # The shared search cache and the rate limiter, as deployed; one benchmark key sends everything, so the
        # limits sit above the load (each request still runs the limiter's script).
        env["TRIBUTARY_REDIS_URL"] = os.environ["TRIBUTARY_TEST_REDIS_URL"]
        for scope, kind in [(s, k) for s in ("KEY", "TENANT") for k in ("READS", "WRITES")]:
            env[f"TRIBUTARY_RATE_LIMIT_{scope}_{kind}_PER_S"] = "1000000"
            env[f"TRIBUTARY_RATE_LIMIT_{scope}_{kind}_BURST"] = "1000000"
    await _create_schema(os.environ["TRIBUTARY_TEST_DATABASE_URL"], prefix)
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tributary", "migrate"], env=env, check=True
    )
    with processes(work) as running:
        running.start(
            "command-api", ["serve", "--role", "command-api", "--port", "18180", "--grpc-port", "18190"], env
        )
        running.start(
            "query-api",
            [
                "serve",
                "--role",
                "query-api",
                "--port",
                "18181",
                "--grpc-port",
                "18191",
                "--workers",
                str(query_workers),
            ],
            env,
        )
        running.start("applier", ["serve", "--role", "applier"], env)
        running.start("projector", ["serve", "--role", "projector"], env)
        await asyncio.gather(ready("http://127.0.0.1:18180"), ready("http://127.0.0.1:18181"))
        yield "http://127.0.0.1:18180", "http://127.0.0.1:18181", running


async def _create_schema(url: str, schema: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    await engine.dispose()


@asynccontextmanager
async def embedded_mode(
    work: Path,
    port: int = 18182,
    grpc_port: int = 18192,
    env: dict[str, str] | None = None,
    module: str = "tributary",
) -> AsyncIterator[tuple[str, str, Processes]]:
    """`env`: added to this process's environment; `module`: as `Processes.start` has it."""
    env = {**os.environ, **(env or {}), "TRIBUTARY_DATA_DIR": str(work), "TRIBUTARY_ADMIN_KEY": ADMIN_KEY}
    url = f"http://127.0.0.1:{port}"
    with processes(work) as running:
        running.start("embedded", ["serve", "--port", str(port), "--grpc-port", str(grpc_port)], env, module)
        await ready(url)
        yield url, url, running
