"""What metrics and tracing cost the search path: server CPU per search and QPS, HTTP and gRPC, with the metrics
as shipped or taken out, and tracing off, sampled at 1% and at 100%.

    python -m bench.telemetry [--vectors 20000] [--dims 384] [--clients 8] [--seconds 3] [--rounds 8]

Loads --vectors clustered vectors into an embedded-mode server (its search path is the query API's, the same code
as a query-api role), copies its data directory, and runs one server per setting side by side:
- `as shipped`: metrics on, tracing off (no OTEL_* variable), the one every other is compared with;
- `again`: the same, a control: each server builds its own HNSW graph and lays out its memory its own way, so what
  tells two identical servers apart is the smallest difference the others can show;
- `metrics off`: bench/unmetered.py, the metrics a search updates and the HTTP metrics middleware taken out;
- `tracing 1%`: `OTEL_TRACES_EXPORTER=otlp`, `OTEL_TRACES_SAMPLER=parentbased_traceidratio`,
  `OTEL_TRACES_SAMPLER_ARG=0.01`; `tracing 100%`: `parentbased_always_on`. Their spans go over OTLP/gRPC to a
  sink in this process that acknowledges each export unread, so a server pays the whole export (batching,
  encoding, sending) and the sink almost nothing.

Then --rounds rounds: in each, every server in turn (the order rotated each round) is searched for --seconds by
--clients keep-alive clients, three ways: HTTP cold (every query a new vector), HTTP cached (20 queries repeated:
the cheapest search, where a per-request cost shows most) and gRPC cached. It records QPS and the server's CPU per
search (user + system time of its process from /proc, exporter thread included, over the searches it answered).
The machine is shared: what else runs moves every figure from one minute to the next. So each setting is compared
with `as shipped` of the same round (per-round ratios; drift within a round is small and falls on the settings in
turn), and the report gives the median ratio over the rounds with its spread (the middle half: 25th to 75th
percentile). CPU per search is the steadier figure; QPS moves with the load the clients and the rest of the
machine put on the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, ADMIN_KEY, embedded_mode
from bench.search import Data, indexed, load, measure, packed
from entrypoints.grpc_api.v1 import tributary_pb2 as pb

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
ONE_PERCENT = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.01",
}
ALL = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_always_on"}


@dataclass(frozen=True)
class Setting:
    env: dict[str, str]
    module: str = "tributary"


BASELINE = "as shipped"
SETTINGS = {
    BASELINE: Setting({}),
    "again": Setting({}),
    "metrics off": Setting({}, "bench.unmetered"),
    "tracing 1%": Setting(ONE_PERCENT),
    "tracing 100%": Setting(ALL),
}
KINDS = ("HTTP cold", "HTTP cached", "gRPC cached")
GRPC_METADATA = (("authorization", f"Bearer {ADMIN_KEY}"),)
TICKS = os.sysconf("SC_CLK_TCK")


class Sink:
    """An OTLP/gRPC trace endpoint that acknowledges every export without reading it; counts the bytes."""

    def __init__(self) -> None:
        self.received = 0
        self._server = grpc.aio.server()

        async def export(request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
            self.received += len(request)
            return b""  # an empty ExportTraceServiceResponse: everything accepted

        handler = grpc.unary_unary_rpc_method_handler(export)
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": handler})]
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def grpc_qps(target: str, requests: list[bytes], clients: int, seconds: float) -> float:
    """gRPC searches a second from `clients` channels (one HTTP/2 connection each), each sending the serialised
    `requests` in turn, one after the other, for `seconds`; answers are left undecoded."""
    counter = iter(range(10**9))
    answered = 0
    deadline = time.perf_counter() + seconds

    async def client(channel: grpc.aio.Channel) -> None:
        nonlocal answered
        search = channel.unary_unary(
            "/tributary.v1.Search/Search", request_serializer=None, response_deserializer=None
        )
        while time.perf_counter() < deadline:
            await search(requests[next(counter) % len(requests)], metadata=GRPC_METADATA)
            answered += 1

    channels = [grpc.aio.insecure_channel(target) for _ in range(clients)]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(channel) for channel in channels))
    finally:
        for channel in channels:
            await channel.close()
    return answered / (time.perf_counter() - started)


@dataclass(frozen=True)
class Server:
    url: str
    grpc: str
    pid: int

    async def searched(
        self, searching: Callable[[Server], Awaitable[float]], seconds: float
    ) -> tuple[float, float]:
        """QPS, and server CPU microseconds per search."""
        before = cpu_seconds(self.pid)
        qps = await searching(self)
        return qps, (cpu_seconds(self.pid) - before) / (qps * seconds) * 1e6


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


async def run(args: argparse.Namespace) -> None:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]
    data = Data(args.vectors, args.dims)
    rng = np.random.default_rng(5)
    noise = 0.01 * rng.standard_normal((4096, args.dims)).astype(np.float32)

    def cold(n: int) -> dict[str, object]:
        query = data.queries[n % 200] + noise[n % 4096] * (1 + n // 4096)
        return {"vector": packed(query), "k": 10, "include": []}

    def cached(n: int) -> dict[str, object]:
        return cold(n % 20)

    grpc_cached = [
        pb.SearchRequest(
            dataset="bench",
            query=pb.Query(vector=(data.queries[n] + noise[n]).astype("<f4").tobytes(), k=10),
            consistency=pb.Consistency(level="eventual"),
        ).SerializeToString()
        for n in range(20)
    ]
    kinds: dict[str, Callable[[Server], Awaitable[float]]] = {
        "HTTP cold": lambda server: _http_qps(server.url, cold, args.clients, args.seconds),
        "HTTP cached": lambda server: _http_qps(server.url, cached, args.clients, args.seconds),
        "gRPC cached": lambda server: grpc_qps(server.grpc, grpc_cached, args.clients, args.seconds),
    }
    sink = Sink()
    await sink.start()
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}"}
    # setting -> kind -> [(QPS, CPU us a search)], one a round
    results = {name: {kind: list[tuple[float, float]]() for kind in KINDS} for name in SETTINGS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed = Path(tmp) / "seed"
            seed.mkdir()
            async with (
                embedded_mode(seed, free_port(), free_port()) as (url, _, _),
                httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=120) as client,
            ):
                created = await client.post(
                    "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": args.dims}
                )
                created.raise_for_status()
                await load(client, client, data)
            async with AsyncExitStack() as stack:
                servers: dict[str, Server] = {}
                for name, setting in SETTINGS.items():
                    work = Path(tmp) / f"server{len(servers)}"
                    shutil.copytree(seed, work)
                    grpc_port = free_port()
                    env = setting.env | endpoint if setting.env else None
                    url, _, running = await stack.enter_async_context(
                        embedded_mode(work, free_port(), grpc_port, env, setting.module)
                    )
                    servers[name] = Server(url, f"127.0.0.1:{grpc_port}", running.pid("embedded"))
                for server in servers.values():
                    await indexed(server.url)
                    for searching in kinds.values():  # warm up (and fill the cache)
                        await searching(server)
                names = list(SETTINGS)
                for round_ in range(args.rounds):
                    for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                        line = []
                        for kind, searching in kinds.items():
                            qps, cpu = await servers[name].searched(searching, args.seconds)
                            results[name][kind].append((qps, cpu))
                            line.append(f"{kind} {qps:5.0f} QPS {cpu:5.0f} us")
                        print(f"round {round_ + 1}, {name:12s}: {', '.join(line)}", flush=True)
    finally:
        await sink.stop()
    print(f"{sink.received / 1e6:.1f} MB of spans exported in all")
    report(results, args)


def report(results: dict[str, dict[str, list[tuple[float, float]]]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} rounds, {args.clients} clients, {args.seconds:.0f} s a setting and kind; against "
        f"'{BASELINE}' of the same round: median [25th..75th percentile] over the rounds"
    )
    for kind in KINDS:
        print(f"\n{kind}:")
        base = results[BASELINE][kind]
        for name, by_kind in results.items():
            runs = by_kind[kind]
            qps = statistics.median(q for q, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            line = f"  {name:12s} {qps:6.0f} QPS {cpu:6.0f} us CPU a search"
            if name != BASELINE:
                cpu_low, cpu_mid, cpu_high = quartiles(
                    [c / b[1] - 1 for (_, c), b in zip(runs, base, strict=True)]
                )
                qps_low, qps_mid, qps_high = quartiles(
                    [q / b[0] - 1 for (q, _), b in zip(runs, base, strict=True)]
                )
                line += (
                    f"   CPU {cpu_mid:+6.1%} [{cpu_low:+6.1%}..{cpu_high:+6.1%}]"
                    f"   QPS {qps_mid:+6.1%} [{qps_low:+6.1%}..{qps_high:+6.1%}]"
                )
            print(line)


async def _http_qps(
    url: str, bodies: Callable[[int], dict[str, object]], clients: int, seconds: float
) -> float:
    return (await measure(url, bodies, clients, seconds)).qps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
