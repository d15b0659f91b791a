"""Fault suite, Kafka and Redis side: real role processes (applier, projector, command API, query API) against a
private Kafka, Redis and PostgreSQL (tests/faults.py), and the broker or the cache taken away under load. The
Prometheus deploy/local/services.sh runs scrapes every role meanwhile, and each test reads the outage and the
recovery from it as an operator would (the 503s, the breaker, the consumer lag).

Kafka is stopped OUTAGES times for OUTAGE_S seconds under WRITERS concurrent writers: 4 x 60 s, as issue 10 asks
(TRIBUTARY_FAULT_OUTAGES and TRIBUTARY_FAULT_OUTAGE_S shorten it for a quick local run). An outage that long leaves
batches without a partition leader past aiokafka's 40 s request timeout, which is what opened the sequence gap that
stuck partitions (D1); tests/test_producer_recovery.py also opens that gap directly. Each writer retries a refused
request with its Idempotency-Key until it is acknowledged, as a client should. The test prints its counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from events import partition_key
from tests import services as shared_services
from tests.faults import PrivateServices, private_services
from tests.helpers import ADMIN_KEY, eventually
from tests.processes import free_port, serve, tributary_env, wait_ready
from tests.prometheus_tools import scalar, scraped_by, value_when
from tributary.db.migrate import upgrade
from tributary.db.session import engine_for
from tributary.settings import Settings

pytestmark = pytest.mark.kafka

WRITERS = 6
OUTAGES = int(os.environ.get("TRIBUTARY_FAULT_OUTAGES", "4"))
OUTAGE_S = float(os.environ.get("TRIBUTARY_FAULT_OUTAGE_S", "60"))
PARTITIONS = 4
DIMS = 4
# Far above the publish bound (kafka_publish_timeout_s, 5 s): a request still unanswered by then hangs.
CLIENT_TIMEOUT_S = 30.0
# Generous deadlines for recovery: conditions are waited for, never timed.
RECOVERY_S = 120.0
CPU_SHARE_LIMIT = 0.20


@dataclass
class Role:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None


@dataclass
class Deployment:
    services: PrivateServices
    roles: dict[str, Role]
    datasets: list[str]
    prometheus: shared_services.Prometheus
    # The `run` label Prometheus gives this deployment's series.
    run: str

    def client(self, role: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.roles[role].port}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=CLIENT_TIMEOUT_S,
        )


def dataset_per_partition() -> list[str]:
    """One dataset name on each command partition (the key decides it), so every partition is written."""
    partitioner = DefaultPartitioner()
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < PARTITIONS:
        name = f"ds{n}"
        partition = partitioner(
            partition_key("default", name), list(range(PARTITIONS)), list(range(PARTITIONS))
        )
        chosen.setdefault(partition, name)
        n += 1
    return [chosen[p] for p in range(PARTITIONS)]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("outage")
    prometheus = shared_services.prometheus()
    with private_services() as services:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp,
            storage_root=str(tmp / "datasets"),
            database_url=services.database_url,
            database_schema="public",
            kafka_bootstrap=services.kafka_bootstrap,
            redis_url=services.redis_url,
            topic_prefix="outage",
            command_partitions=PARTITIONS,
            admin_key=ADMIN_KEY,
        )
        asyncio.run(_migrate(settings))
        limits = {
            f"TRIBUTARY_RATE_LIMIT_{who}_{kind}": "100000"
            for who in ("KEY", "TENANT")
            for kind in ("READS_PER_S", "READS_BURST", "WRITES_PER_S", "WRITES_BURST")
        }
        env = tributary_env(settings, **limits)
        roles: dict[str, Role] = {}
        try:
            for name in ("applier", "projector", "command-api", "query-api"):
                # The workers' port serves their health and /metrics.
                port = free_port()
                log = tmp / f"{name}.log"
                roles[name] = Role(name, serve(name, env, log, port), log, port)
            for role in roles.values():
                assert role.port is not None
                wait_ready(role.port, role.process, role.log, timeout=120)
            run = f"outage-{tmp.name}"
            deployed = Deployment(services, roles, dataset_per_partition(), prometheus, run)
            asyncio.run(_create(deployed))
            ports = {name: role.port for name, role in roles.items() if role.port is not None}
            with scraped_by(prometheus, run, ports):
                yield deployed
        finally:
            for role in roles.values():
                role.process.terminate()
            for role in roles.values():
                try:
                    role.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    role.process.kill()
                    role.process.wait()


async def _migrate(settings: Settings) -> None:
    engine = engine_for(settings)
    await upgrade(engine)
    await engine.dispose()


async def _create(deployment: Deployment) -> None:
    async with deployment.client("command-api") as commands:
        for name in deployment.datasets:
            created = await commands.post(
                "/api/v1/datasets?wait=true", json={"name": name, "dimensions": DIMS}
            )
            assert created.status_code == 200 and created.json()["status"] == "applied", created.text


def test_every_role_starts_against_the_private_services(deployment: Deployment) -> None:
    assert all(role.process.poll() is None for role in deployment.roles.values())


async def test_redis_stopped_reads_are_answered_uncached(deployment: Deployment) -> None:
    search = {"vector": [1.0, 0.0, 0.0, 0.0], "k": 5}
    async with deployment.client("command-api") as commands, deployment.client("query-api") as queries:
        dataset = deployment.datasets[0]
        written = await commands.post(
            f"/api/v1/datasets/{dataset}/vectors?wait=true",
            json={"vectors": [{"id": f"redis-{i}", "vector": [1.0, i, 0.0, 0.0]} for i in range(5)]},
        )
        assert written.status_code == 200, written.text
        before = await queries.post(f"/api/v1/datasets/{dataset}/search", json=search)
        assert before.status_code == 200, before.text
        await asyncio.to_thread(deployment.services.stop, "redis")
        try:
            answers = [
                await queries.post(f"/api/v1/datasets/{dataset}/search", json=search) for _ in range(20)
            ]
            ready = await queries.get("/readyz")
        finally:
            await asyncio.to_thread(deployment.services.up)
        codes = Counter(a.status_code for a in answers)
        print(f"\nRedis stopped: {dict(codes)} for 20 searches, /readyz {ready.status_code} {ready.json()}")
        assert codes == {200: 20}
        assert all(a.json()["results"] == before.json()["results"] for a in answers)
        # The cache is optional: without it the query API is degraded, not out of rotation.
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"

        # As Prometheus saw it: the query API's Redis breaker opened, and closed again once Redis answered (a
        # search after the breaker's pause is its probe).
        redis = f'run="{deployment.run}", role="query-api", dependency="Redis"'
        prometheus = deployment.prometheus
        assert await value_when(prometheus, f"sum(tributary_circuit_breaker_opens_total{{{redis}}})", 1) >= 1

        async def closed() -> bool | None:
            await queries.post(f"/api/v1/datasets/{dataset}/search", json=search)
            return (
                True
                if await scalar(prometheus, f"max(tributary_circuit_breaker_state{{{redis}}})") == 0
                else None
            )

        await eventually(closed, timeout=RECOVERY_S, every=1)


@dataclass
class Stats:
    acknowledged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unavailable: int = 0
    without_retry_after: int = 0
    unconfirmed: int = 0
    in_flight: int = 0
    hung: int = 0
    refused_connections: int = 0
    other: Counter[int] = field(default_factory=Counter)
    other_bodies: list[str] = field(default_factory=list)
    # Operations a 503 left unconfirmed, and retried with their key.
    unconfirmed_operations: set[str] = field(default_factory=set)
    # How long the slowest 503 took to come (printed: the issue asks for at most 10 s).
    slowest_503_s: float = 0.0


async def write_until_stopped(
    writer: int, client: httpx.AsyncClient, datasets: list[str], stats: Stats, stop: asyncio.Event
) -> None:
    rng = random.Random(writer)
    request = 0
    while not stop.is_set():
        dataset = datasets[(writer + request) % len(datasets)]
        ids = [f"w{writer}-{request}-{j}" for j in range(5)]
        body = {"vectors": [{"id": i, "vector": [rng.uniform(-1, 1) for _ in range(DIMS)]} for i in ids]}
        key = f"w{writer}-{request}"
        request += 1
        # The same request again with its key until it is acknowledged, pausing as Retry-After says.
        while True:
            sent = time.monotonic()
            try:
                answer = await client.post(
                    f"/api/v1/datasets/{dataset}/vectors", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TimeoutException:
                stats.hung += 1
                continue
            except httpx.TransportError:
                stats.refused_connections += 1
                await asyncio.sleep(1)
                continue
            if answer.status_code in (200, 202):
                stats.acknowledged[dataset].update(ids)
                break
            if answer.status_code == 503:
                stats.unavailable += 1
                stats.slowest_503_s = max(stats.slowest_503_s, time.monotonic() - sent)
                retry_after = answer.headers.get("Retry-After")
                if retry_after is None:
                    stats.without_retry_after += 1
                if answer.json().get("status") == "unconfirmed":
                    stats.unconfirmed += 1
                    stats.unconfirmed_operations.add(answer.json()["operation_id"])
                await asyncio.sleep(float(retry_after or 1))
                continue
            if answer.status_code == 409:
                # The first attempt of this key is still being published (a hung one).
                stats.in_flight += 1
                await asyncio.sleep(1)
                continue
            stats.other[answer.status_code] += 1
            stats.other_bodies.append(answer.text[:300])
            break
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime, fields 14 and 15 of proc(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def most_repeated_line(log: Path, start: datetime, end: datetime) -> tuple[int, str]:
    """The largest number of times one line (level, logger and text) was logged within one second."""
    per_second: Counter[tuple[str, str]] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        when = datetime.fromisoformat(record["time"]).replace(microsecond=0)
        if start.replace(microsecond=0) <= when <= end:
            text = f"{record['level']} {record['logger']}: {record['message']}"
            per_second[(when.isoformat(), text)] += 1
    if not per_second:
        return 0, ""
    (_, text), count = per_second.most_common(1)[0]
    return count, text


async def accepts_writes(commands: httpx.AsyncClient, dataset: str, probe: str) -> float | None:
    """How long until a write to `dataset` (so to its partition) is acknowledged, retried with its key; None when
    not before the deadline."""
    began = time.monotonic()
    deadline = began + RECOVERY_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            answer = await commands.post(
                f"/api/v1/datasets/{dataset}/vectors",
                json={"vectors": [{"id": probe, "vector": [0.5] * DIMS}]},
                headers={"Idempotency-Key": probe},
            )
            if answer.status_code in (200, 202):
                return time.monotonic() - began
        await asyncio.sleep(1)
    return None


async def stored_ids(queries: httpx.AsyncClient, dataset: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await queries.post(
            f"/api/v1/datasets/{dataset}/scroll?consistency=eventual",
            json={"limit": 10_000, "cursor": cursor, "include": []},
        )
        assert page.status_code == 200, page.text
        ids += [r["id"] for r in page.json()["results"]]
        cursor = page.json().get("next_cursor")
        if cursor is None:
            return ids


@contextlib.asynccontextmanager
async def writers(deployment: Deployment, stats: Stats) -> AsyncIterator[None]:
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(deployment.client("command-api")) for _ in range(WRITERS)]
        tasks = [
            asyncio.create_task(write_until_stopped(n, client, deployment.datasets, stats, stop))
            for n, client in enumerate(clients)
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def test_kafka_outages_under_writers(deployment: Deployment) -> None:
    roles = deployment.roles
    pids = {name: role.process.pid for name, role in roles.items()}
    stats = Stats()
    cpu_shares: dict[str, list[float]] = defaultdict(list)
    repeats: dict[str, list[tuple[int, str]]] = defaultdict(list)
    # Per outage, seconds from the broker's return until the slowest partition took a write (None: never).
    partitions_back: list[float | None] = []
    async with deployment.client("command-api") as commands, writers(deployment, stats):
        await asyncio.sleep(5)
        for outage in range(OUTAGES):
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started, clock = datetime.now(UTC), time.monotonic()
            # The first outage is a crash (SIGKILL), the next a clean stop.
            await asyncio.to_thread(deployment.services.stop, "kafka", outage == 0)
            await asyncio.sleep(OUTAGE_S)
            elapsed = time.monotonic() - clock
            for name, pid in pids.items():
                cpu_shares[name].append((cpu_seconds(pid) - before[name]) / elapsed)
            ended = datetime.now(UTC)
            for name, role in roles.items():
                repeats[name].append(most_repeated_line(role.log, started, ended))
            await asyncio.to_thread(deployment.services.up)
            back = await asyncio.gather(
                *(accepts_writes(commands, d, f"probe-{outage}-{d}") for d in deployment.datasets)
            )
            partitions_back.append(None if None in back else max(t for t in back if t is not None))
            returned = time.monotonic()
            await asyncio.sleep(5)

    async with deployment.client("query-api") as queries:
        deadline = time.monotonic() + RECOVERY_S
        while True:
            stored = {d: await stored_ids(queries, d) for d in deployment.datasets}
            missing = {d: stats.acknowledged[d] - set(ids) for d, ids in stored.items()}
            if not any(missing.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        visible_after_s = time.monotonic() - returned
        # What an unconfirmed first attempt became, once its retry was acknowledged: applied, once.
        deadline = time.monotonic() + RECOVERY_S
        while True:
            operations = Counter(
                [
                    (await queries.get(f"/api/v1/operations/{op}")).json()["status"]
                    for op in stats.unconfirmed_operations
                ]
            )
            if set(operations) <= {"applied"} or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    acknowledged = sum(len(ids) for ids in stats.acknowledged.values())
    duplicated = sum(len(ids) - len(set(ids)) for ids in stored.values())
    lost = sum(len(ids) for ids in missing.values())
    restarted = [name for name, role in roles.items() if role.process.poll() is not None]

    print(
        f"\nKafka stopped {OUTAGES} x {OUTAGE_S:.0f} s under {WRITERS} writers: "
        f"acknowledged {acknowledged} ids, lost {lost}, duplicated {duplicated}; "
        f"503 answers {stats.unavailable} (without Retry-After {stats.without_retry_after}, unconfirmed "
        f"{stats.unconfirmed}, of {len(stats.unconfirmed_operations)} operations now {dict(operations)}), 409 in flight {stats.in_flight}, other codes {dict(stats.other)}, "
        f"hung past {CLIENT_TIMEOUT_S:.0f} s {stats.hung}, refused connections {stats.refused_connections}; "
        f"slowest 503 {stats.slowest_503_s:.1f} s; seconds after each return until every partition took a write "
        f"{[None if t is None else round(t, 1) for t in partitions_back]}; every acknowledged id visible "
        f"{visible_after_s:.1f} s after the last return; roles exited {restarted}"
    )
    for name in roles:
        shares = ", ".join(f"{s:.1%}" for s in cpu_shares[name])
        worst = max(repeats[name])
        replaced = roles[name].log.read_text(errors="replace").count("producer lost a batch")
        print(
            f"  {name}: CPU during the outages {shares}; producers that lost a batch {replaced}; "
            f"most repeated line {worst[0]}/s: {worst[1][:160]}"
        )

    # As Prometheus saw it: the command API's 503s, and every consumer caught up once the broker was back.
    run, prometheus = f'run="{deployment.run}"', deployment.prometheus
    refused = f'tributary_http_requests_total{{{run}, role="command-api", status="5xx"}}'
    assert await value_when(prometheus, f"sum({refused})", 1) >= 1
    for consumer in ("applier", "projector", "query-follower"):
        lag = f'tributary_consumer_lag_messages{{{run}, consumer="{consumer}"}}'
        assert await value_when(prometheus, f"count({lag} == 0)", PARTITIONS) == PARTITIONS, consumer

    assert stats.other == Counter(), stats.other_bodies[:5]
    assert stats.unavailable > 0 and stats.without_retry_after == 0
    assert stats.hung == 0
    assert set(operations) <= {"applied"}
    assert None not in partitions_back
    assert lost == 0 and duplicated == 0
    assert not restarted
    assert all(share <= CPU_SHARE_LIMIT for shares in cpu_shares.values() for share in shares), cpu_shares
    assert all(count <= 1 for counts in repeats.values() for count, _ in counts), repeats
