"""What tracing costs the search path: QPS with tracing off, on sampled at 1% and on at 100%.

    python -m bench.tracing [--vectors 20000] [--dims 384] [--clients 8] [--seconds 10] [--rounds 3]

Embedded mode (one `tributary serve` process: the search path is the query API's, the same code as a query-api
role). Loads --vectors clustered vectors once, then restarts the server with each tracing setting in turn, in
--rounds rounds (the order rotated each round, so drift on a shared machine falls on every setting alike), and
measures searches from --clients keep-alive clients for --seconds: cold (every query a new vector) and cached
(20 queries repeated, the cheapest request, where a per-request cost shows most). The settings are the standard
variables: off (none set); `OTEL_TRACES_EXPORTER=otlp` with `OTEL_TRACES_SAMPLER=parentbased_traceidratio` and
`OTEL_TRACES_SAMPLER_ARG=0.01`; and with `parentbased_always_on`. The spans go over OTLP/gRPC to a sink in
this process that acknowledges each export unread, so the server pays the whole export (batching, encoding,
sending) and the sink almost nothing. Prints the median QPS of each setting and its cost against off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, embedded_mode
from bench.search import Data, indexed, load, measure, packed

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
SETTINGS: dict[str, dict[str, str]] = {
    "off": {},
    "on, 1%": {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
    "on, 100%": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


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


async def measured(
    work: Path, setting: dict[str, str], data: Data, clients: int, seconds: float
) -> tuple[float, float]:
    """Cold and cached QPS of a server started with `setting` over the data in `work`."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]
    os.environ.update(setting)
    async with embedded_mode(work) as (_, url, _):
        await indexed(url)
        rng = np.random.default_rng(5)
        noise = 0.01 * rng.standard_normal((4096, data.vectors.shape[1])).astype(np.float32)

        def cold(n: int) -> dict[str, object]:
            query = data.queries[n % 200] + noise[n % 4096] * (1 + n // 4096)
            return {"vector": packed(query), "k": 10, "include": []}

        def cached(n: int) -> dict[str, object]:
            return cold(n % 20)

        qps: list[float] = []
        bodies: Callable[[int], dict[str, object]]
        for bodies in (cold, cached):
            await measure(url, bodies, 1, 1.0)  # warm up (and fill the cache)
            qps.append((await measure(url, bodies, clients, seconds)).qps)
        return qps[0], qps[1]


async def run(args: argparse.Namespace) -> None:
    sink = Sink()
    await sink.start()
    endpoint = f"http://127.0.0.1:{sink.port}"
    data = Data(args.vectors, args.dims)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SETTINGS}
    try:
        with tempfile.TemporaryDirectory() as work:
            async with (
                embedded_mode(Path(work)) as (commands, queries, _),
                httpx.AsyncClient(base_url=commands, headers=ADMIN_HEADERS, timeout=120) as writes,
                httpx.AsyncClient(base_url=queries, headers=ADMIN_HEADERS, timeout=120) as reads,
            ):
                created = await writes.post(
                    "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": args.dims}
                )
                created.raise_for_status()
                await load(writes, reads, data)
            names = list(SETTINGS)
            for round_ in range(args.rounds):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    before = sink.received
                    setting = SETTINGS[name] | (
                        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if SETTINGS[name] else {}
                    )
                    cold, cached = await measured(Path(work), setting, data, args.clients, args.seconds)
                    results[name].append((cold, cached))
                    print(
                        f"round {round_ + 1}, tracing {name:8s}: cold {cold:6.0f} QPS, cached {cached:6.0f} QPS, "
                        f"{(sink.received - before) / 1e6:6.2f} MB of spans exported"
                    )
    finally:
        await sink.stop()
    off_cold = statistics.median(cold for cold, _ in results["off"])
    off_cached = statistics.median(cached for _, cached in results["off"])
    print(f"median of {args.rounds} rounds, {args.clients} clients, {args.seconds:.0f} s each:")
    for name, runs in results.items():
        cold = statistics.median(c for c, _ in runs)
        cached = statistics.median(c for _, c in runs)
        print(
            f"  tracing {name:8s}: cold {cold:6.0f} QPS ({cold / off_cold - 1:+6.1%}), "
            f"cached {cached:6.0f} QPS ({cached / off_cached - 1:+6.1%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
