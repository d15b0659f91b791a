"""What tracing costs the search path: QPS and server CPU per search with tracing off, on sampled at 1% and on at
100%.

    python -m bench.tracing [--vectors 20000] [--dims 384] [--clients 8] [--seconds 5] [--rounds 5]

Loads --vectors clustered vectors into an embedded-mode server (its search path is the query API's, the same
code as a query-api role), copies its data directory, and runs four servers side by side, one per setting of
the standard variables: off (none set), twice (the second one a control: each server builds its own HNSW
graph, and cold searches differ by that much between two identical servers); `OTEL_TRACES_EXPORTER=otlp` with
`OTEL_TRACES_SAMPLER=parentbased_traceidratio` and `OTEL_TRACES_SAMPLER_ARG=0.01`; and with
`parentbased_always_on`. Their spans go over OTLP/gRPC to a sink in this process that acknowledges each export
unread, so a server pays the whole export (batching, encoding, sending) and the sink almost nothing. Then, in
--rounds rounds (the servers' order rotated each round, so drift on a shared machine falls on each alike), it
searches each server from --clients keep-alive clients for --seconds: cold (every query a new vector) and cached
(20 queries repeated: the cheapest search, where a per-request cost shows most). Prints, per setting, the median
QPS and the median server CPU per search (user + system time of the server process from /proc, exporter thread
included, over the searches it answered), each against off. On a machine shared with other work the CPU per
search is the steadier of the two: QPS moves with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, embedded_mode
from bench.search import Data, indexed, load, measure, packed

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
SETTINGS: dict[str, dict[str, str]] = {
    "off": {},
    # A second server without tracing: each server builds its own HNSW graph (threads make it differ a little),
    # so the spread between the two "off" servers is what the cold figures can tell apart.
    "off again": {},
    "on, 1%": {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
    "on, 100%": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}
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


class Server:
    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid

    async def searched(
        self, bodies: Callable[[int], dict[str, object]], clients: int, seconds: float
    ) -> tuple[float, float]:
        """QPS, and server CPU microseconds per search."""
        before = cpu_seconds(self.pid)
        got = await measure(self.url, bodies, clients, seconds)
        used = cpu_seconds(self.pid) - before
        return got.qps, used / (got.qps * seconds) * 1e6


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

    kinds = {"cold": cold, "cached": cached}
    sink = Sink()
    await sink.start()
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}"}
    # setting -> kind -> [(QPS, CPU us a search)] over the rounds
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {kind: [] for kind in kinds} for name in SETTINGS
    }
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
                    url, _, running = await stack.enter_async_context(
                        embedded_mode(work, free_port(), free_port(), setting | endpoint if setting else None)
                    )
                    servers[name] = Server(url, running.pid("embedded"))
                for server in servers.values():
                    await indexed(server.url)
                    for bodies in kinds.values():
                        await measure(server.url, bodies, 1, 1.0)  # warm up (and fill the cache)
                names = list(SETTINGS)
                for round_ in range(args.rounds):
                    for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                        line = []
                        for kind, bodies in kinds.items():
                            qps, cpu = await servers[name].searched(bodies, args.clients, args.seconds)
                            results[name][kind].append((qps, cpu))
                            line.append(f"{kind} {qps:5.0f} QPS {cpu:5.0f} us CPU")
                        print(f"round {round_ + 1}, tracing {name:8s}: {', '.join(line)}")
    finally:
        await sink.stop()
    print(f"{sink.received / 1e6:.1f} MB of spans exported in all")
    print(f"median of {args.rounds} rounds, {args.clients} clients, {args.seconds:.0f} s each:")
    off = {
        kind: (statistics.median(q for q, _ in runs), statistics.median(c for _, c in runs))
        for kind, runs in results["off"].items()
    }
    for name, by_kind in results.items():
        parts = []
        for kind, runs in by_kind.items():
            qps, cpu = statistics.median(q for q, _ in runs), statistics.median(c for _, c in runs)
            parts.append(
                f"{kind} {qps:5.0f} QPS ({qps / off[kind][0] - 1:+6.1%}), "
                f"{cpu:5.0f} us CPU a search ({cpu / off[kind][1] - 1:+6.1%})"
            )
        print(f"  tracing {name:8s}: {'; '.join(parts)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
