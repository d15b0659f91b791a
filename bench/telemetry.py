"""What metrics and tracing cost the search path: server CPU per search and QPS, HTTP and gRPC, with the metrics
as shipped or taken out, and tracing off, sampled at 1% and at 100%.

    python -m bench.telemetry [--vectors 20000] [--dims 384] [--clients 8] [--seconds 3] [--rounds 8]
    python -m bench.telemetry --in-process [--vectors 20000] [--dims 384] [--rounds 40] [--block 100]
    python -m bench.telemetry --components [--rounds 30]

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

`--in-process` measures the same settings finely interleaved in one process, where the servers' differences
(each its own graph and memory) and most of the machine's drift fall away: one embedded app over one loaded
dataset, its middleware stack built once per setting (as shipped: without HttpTracing; metrics off: without
HttpMetrics, and the metrics a search updates made to count nothing; tracing: HttpTracing, with a provider
sampling 1% or 100% installed while that setting runs, whose spans are encoded to OTLP protobuf and dropped).
In each of --rounds rounds every setting in turn answers --block requests of each kind, one at a time, straight
through ASGI (HTTP) or the servicer (gRPC, with a stand-in for grpc's call context): what differs is the app's
own work, without the HTTP server's parsing or grpc's (the same for every setting). It reports the process's
CPU time a request (all threads: the span processor's included), against as shipped of the same round.

`--components` times the instrumentation alone, which the two above cannot resolve on a busy machine: the HTTP
metrics middleware, and HttpTracing with tracing sampled at 1% and at 100%, each around an app that answers at
once; a gRPC call's server span (`tracing.serving`, as the `rpc` decorator opens it, described when recorded)
and its two metrics; a search cache hit's counter. Process CPU time a call, 2,000 calls a block, the
blocks interleaved over --rounds rounds; the median block less the bare app's (or the empty loop's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
from fastapi.routing import APIRoute
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBasedTraceIdRatio, Sampler
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.cluster import ADMIN_HEADERS, ADMIN_KEY, embedded_mode
from bench.search import Data, indexed, load, measure, packed
from entrypoints.grpc_api.servicers import Search
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.http_app import create_app
from tributary import metrics, tracing
from tributary.http_metrics import HttpMetrics
from tributary.http_tracing import HttpTracing
from tributary.settings import Settings

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


class Discard(SpanExporter):
    """Encodes each batch of spans as the OTLP exporter would send it, and drops it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


class CallContext:
    """What the `rpc` decorator and the Search servicer use of grpc's servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, _metadata: object) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code: grpc.StatusCode, details: str = "", _trailing: object = None) -> None:
        raise RuntimeError(f"search failed: {code} {details}")


@contextmanager
def unmetered() -> Iterator[None]:
    """The metrics a search updates count nothing while the block runs (the objects stay: modules hold them)."""
    from bench.unmetered import PER_SEARCH, Unmetered

    nothing = Unmetered()
    patched = [getattr(metrics, name) for name in PER_SEARCH]
    for metric in patched:
        metric.labels = nothing.labels
        metric.inc = nothing.inc
        metric.observe = nothing.observe
    try:
        yield
    finally:
        for metric in patched:
            for method in ("labels", "inc", "observe"):
                delattr(metric, method)


async def in_process(args: argparse.Namespace) -> None:
    data = Data(args.vectors, args.dims)
    rng = np.random.default_rng(5)
    providers = {"tracing 1%": _provider(ParentBasedTraceIdRatio(0.01)), "tracing 100%": _provider(ALWAYS_ON)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), admin_key=ADMIN_KEY, grpc_port=0)  # type: ignore[call-arg]
        tracing.install(providers["tracing 1%"])  # so that create_app adds HttpTracing
        app = create_app(settings)
        tracing.install(None)
        everything = list(app.user_middleware)
        stacks = {
            BASELINE: [m for m in everything if m.cls is not HttpTracing],
            "metrics off": [m for m in everything if m.cls not in (HttpTracing, HttpMetrics)],
            "tracing 1%": everything,
            "tracing 100%": everything,
        }
        built = {}
        for name, middleware in stacks.items():
            app.user_middleware = middleware
            built[name] = app.build_middleware_stack()
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=ADMIN_HEADERS, timeout=120
            ) as client,
        ):
            created = await client.post(
                "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": args.dims}
            )
            created.raise_for_status()
            await load(client, client, data, transport)
            servicer = Search(app.state.services)
            context = CallContext(GRPC_METADATA)

            def body(vector: np.ndarray) -> bytes:
                return json.dumps({"vector": packed(vector), "k": 10, "include": []}).encode()

            cached_http = [body(data.queries[n]) for n in range(20)]
            cached_grpc = [
                pb.SearchRequest(
                    dataset="bench",
                    query=pb.Query(vector=data.queries[n].astype("<f4").tobytes(), k=10),
                    consistency=pb.Consistency(level="eventual"),
                )
                for n in range(20)
            ]
            cold = iter(range(10**9))

            async def http(asgi: ASGIApp, payload: bytes) -> None:
                sent: list[Message] = []

                async def receive() -> Message:
                    return {"type": "http.request", "body": payload, "more_body": False}

                async def send(message: Message) -> None:
                    sent.append(message)

                await asgi(
                    {
                        "type": "http",
                        "asgi": {"version": "3.0"},
                        "http_version": "1.1",
                        "method": "POST",
                        "scheme": "http",
                        "path": "/api/v1/datasets/bench/search",
                        "raw_path": b"/api/v1/datasets/bench/search",
                        "query_string": b"consistency=eventual",
                        "root_path": "",
                        "headers": [
                            (b"host", b"bench"),
                            (b"content-type", b"application/json"),
                            (b"authorization", ADMIN_HEADERS["Authorization"].encode()),
                            (b"content-length", str(len(payload)).encode()),
                        ],
                        "client": ("127.0.0.1", 1),
                        "server": ("127.0.0.1", 80),
                        "state": {},
                        "app": app,  # what FastAPI's own entry would add
                    },
                    receive,
                    send,
                )
                if sent[0]["status"] != 200:
                    raise RuntimeError(f"search answered {sent[0]['status']}: {sent[1:]}")

            async def http_cold(asgi: ASGIApp, n: int) -> None:
                noise = 0.01 * rng.standard_normal(args.dims).astype(np.float32)
                await http(asgi, body(data.queries[n % 200] + noise * (1 + next(cold))))

            async def http_cached(asgi: ASGIApp, n: int) -> None:
                await http(asgi, cached_http[n % 20])

            async def grpc_cached(_asgi: ASGIApp, n: int) -> None:
                await servicer.Search(cached_grpc[n % 20], context)  # type: ignore[arg-type]

            kinds = {"HTTP cold": http_cold, "HTTP cached": http_cached, "gRPC cached": grpc_cached}
            names = list(built)
            results = {name: {kind: list[tuple[float, float]]() for kind in KINDS} for name in names}
            for round_ in range(-1, args.rounds):  # round -1 warms up
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    tracing.install(providers.get(name))
                    with unmetered() if name == "metrics off" else nullcontext():
                        for kind, searching in kinds.items():
                            gc.collect()
                            before = time.process_time()
                            for n in range(args.block):
                                await searching(built[name], n)
                            used = (time.process_time() - before) / args.block * 1e6
                            if round_ >= 0:
                                results[name][kind].append((0.0, used))
                    tracing.install(None)
                if round_ >= 0 and round_ % 10 == 9:
                    print(f"{round_ + 1} rounds", flush=True)
    for provider in providers.values():
        provider.shutdown()
    print(
        f"\nin one process, {args.rounds} rounds of {args.block} requests a setting and kind, one at a time: "
        f"CPU a request; against '{BASELINE}' of the same round, the difference (median [25th..75th "
        "percentile] over the rounds)"
    )
    for kind in KINDS:
        print(f"\n{kind}:")
        base = [c for _, c in results[BASELINE][kind]]
        for name in names:
            runs = [c for _, c in results[name][kind]]
            line = f"  {name:12s} {statistics.median(runs):6.0f} us CPU a request"
            if name != BASELINE:
                low, mid, high = quartiles([c - b for c, b in zip(runs, base, strict=True)])
                ratio_low, ratio, ratio_high = quartiles([c / b - 1 for c, b in zip(runs, base, strict=True)])
                line += f"   {mid:+5.1f} us [{low:+5.1f}..{high:+5.1f}]   {ratio:+6.1%} [{ratio_low:+6.1%}..{ratio_high:+6.1%}]"
            print(line)


async def components(args: argparse.Namespace) -> None:
    from entrypoints.grpc_api.servicers import _describe
    from tributary.metrics import GRPC_DURATION, GRPC_REQUESTS, SEARCH_CACHE_HITS

    one, every = (_provider(sampler) for sampler in (ParentBasedTraceIdRatio(0.01), ALWAYS_ON))
    target = "/tributary.v1.Search/Search"
    metadata = dict(GRPC_METADATA)
    path = "/api/v1/datasets/{dataset}/search"
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/datasets/bench/search",
        "route": APIRoute(path, endpoint=lambda: None),
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", ADMIN_HEADERS["Authorization"].encode()),
            (b"content-length", b"100"),
        ],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        pass

    async def answer(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def asgi(app: ASGIApp) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            await app(scope, receive, send)

        return call

    async def nothing() -> None:
        pass

    async def served() -> None:
        started = time.perf_counter()
        with tracing.serving(target, metadata) as span:
            await nothing()
            code = grpc.StatusCode.OK
            if metered:
                GRPC_REQUESTS.labels(target, code.name).inc()
                GRPC_DURATION.labels(target).observe(time.perf_counter() - started)
            if span.is_recording():
                _describe(span, target, code, 200)

    async def hit() -> None:
        SEARCH_CACHE_HITS.labels("memory").inc()

    metered = False
    # name -> (what one call does, the provider installed meanwhile, what it is measured against)
    cases: dict[str, tuple[Callable[[], Awaitable[None]], TracerProvider | None, str]] = {
        "HTTP: an app that answers at once": (asgi(answer), None, ""),
        "HTTP: metrics middleware": (asgi(HttpMetrics(answer)), None, "HTTP: an app that answers at once"),
        "HTTP: tracing, 1% sampled": (asgi(HttpTracing(answer)), one, "HTTP: an app that answers at once"),
        "HTTP: tracing, 100% sampled": (
            asgi(HttpTracing(answer)),
            every,
            "HTTP: an app that answers at once",
        ),
        "gRPC: an empty call": (nothing, None, ""),
        "gRPC: span, tracing off": (served, None, "gRPC: an empty call"),
        "gRPC: span, 1% sampled": (served, one, "gRPC: an empty call"),
        "gRPC: span, 100% sampled": (served, every, "gRPC: an empty call"),
        "gRPC: its two metrics": (served, None, "gRPC: span, tracing off"),
        "search cache hit counted": (hit, None, "gRPC: an empty call"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (call, provider, _) in cases.items():
            metered = name == "gRPC: its two metrics"
            tracing.install(provider)
            gc.collect()
            before = time.process_time()
            for _ in range(2000):
                await call()
            times[name].append((time.process_time() - before) / 2000 * 1e6)
            tracing.install(None)
    for provider in (one, every):
        provider.shutdown()
    print(f"CPU a call, median of {args.rounds} blocks of 2,000 [25th..75th percentile]:")
    for name, (_, _, against) in cases.items():
        low, median, high = quartiles(times[name])
        line = f"  {name:36s} {median:6.1f} us [{low:5.1f}..{high:5.1f}]"
        if against:
            line += f"   {median - statistics.median(times[against]):+6.1f} us over {against!r}"
        print(line)


def _provider(sampler: Sampler) -> TracerProvider:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=None, help="default 8; --in-process: 40")
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--components", action="store_true")
    parser.add_argument(
        "--block", type=int, default=100, help="--in-process: requests a setting and kind a round"
    )
    args = parser.parse_args()
    if args.components:
        args.rounds = args.rounds or 30
        asyncio.run(components(args))
    elif args.in_process:
        args.rounds = args.rounds or 40
        asyncio.run(in_process(args))
    else:
        args.rounds = args.rounds or 8
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
