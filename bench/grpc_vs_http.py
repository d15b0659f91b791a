"""gRPC against HTTP on one deployment, in one run: streaming ingest and search QPS.

    eval "$(bash deploy/local/services.sh env)"
    python -m bench.grpc_vs_http [--vectors 50000] [--batch 1000] [--dims 384] [--seconds 10] [--rounds 3]

Starts the distributed roles as `tributary serve` processes (command-api and query-api serve HTTP and gRPC) and
prints:
- ingest, accepted vectors/s: HTTP upserts of --batch records with JSON float lists, one after another (the
  way most clients send them), HTTP with packed base64 vectors, and one gRPC client-streaming upsert of the same
  batches as packed float32 bytes; from the first request to the last answer (202 or the stream's summary), each
  once the writes before it are applied and indexed;
- search QPS and latency with 1 and 8 clients over keep-alive connections, k = 10, eventual consistency, the
  same query vectors for both: HTTP JSON (the lean client of bench/http_load.py) and gRPC (grpcio's synchronous
  stub, a thread a client, requests serialised in advance, answers left undecoded), so both clients cost the
  machine's CPU as little as they can.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, ADMIN_KEY, COMMAND_GRPC, QUERY_GRPC, kafka_mode
from bench.http_load import Load, post, run_load
from bench.ingest import Bodies
from bench.search import indexed
from bench.telemetry import cpu_seconds
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc

METADATA = (("authorization", f"Bearer {ADMIN_KEY}"),)


async def http_ingest(url: str, bodies: Bodies, batches: int, batch: int) -> float:
    async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=120) as client:
        payloads = [bodies.next() for _ in range(batches)]
        started = time.perf_counter()
        for payload in payloads:
            answer = await client.post(
                "/api/v1/datasets/bench/vectors",
                content=payload,
                headers={"content-type": "application/json"},
            )
            answer.raise_for_status()
        return batches * batch / (time.perf_counter() - started)


async def grpc_ingest(vectors: np.ndarray, batches: int, batch: int) -> float:
    rows = [row.astype("<f4").tobytes() for row in vectors]
    messages = [
        pb.UpsertRequest(
            dataset="bench",
            records=[
                pb.Record(id=f"g{b}-{i}", vector=row, metadata_json=f'{{"i":{i}}}')
                for i, row in enumerate(rows)
            ],
        )
        for b in range(batches)
    ]

    async def stream() -> AsyncIterator[pb.UpsertRequest]:
        for message in messages:
            yield message

    async with grpc.aio.insecure_channel(COMMAND_GRPC, options=_options()) as channel:
        started = time.perf_counter()
        summary = await pb_grpc.VectorsStub(channel).UpsertStream(stream(), metadata=METADATA)
        elapsed = time.perf_counter() - started
    assert summary.records == batches * batch
    return batches * batch / elapsed


async def grpc_search(queries: list[bytes], clients: int, seconds: float) -> Load:
    """Each client a thread with a channel of its own (one HTTP/2 connection, as each HTTP client keeps one),
    calling through grpcio's synchronous stub, which made 1.1-1.5x the calls a second of grpc.aio's from one
    client here (the client shares the server's 2 cores)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    def client() -> None:
        with grpc.insecure_channel(QUERY_GRPC, options=_options()) as channel:
            search = channel.unary_unary(
                "/tributary.v1.Search/Search", request_serializer=None, response_deserializer=None
            )
            while time.perf_counter() < deadline:
                request = queries[next(counter) % len(queries)]
                began = time.perf_counter()
                search(request, metadata=METADATA)
                latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(asyncio.to_thread(client) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Load(
        qps=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def settled(queries: str) -> None:
    """Until every write is applied, visible and in HNSW."""
    async with httpx.AsyncClient(base_url=queries, headers=ADMIN_HEADERS, timeout=120) as client:
        while (
            await client.post("/api/v1/datasets/bench/count?consistency=strong", json={})
        ).status_code != 200:
            pass
    await indexed(queries)


def _options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = args.vectors // args.batch
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.batch, args.dims)).astype(np.float32)
    query_vectors = rng.standard_normal((64, args.dims)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        async with kafka_mode(Path(work)) as (commands, queries, running):
            command_api, query_api = running.pid("command-api"), running.pid("query-api")
            async with httpx.AsyncClient(base_url=commands, headers=ADMIN_HEADERS, timeout=60) as client:
                created = await client.post(
                    "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": args.dims}
                )
                created.raise_for_status()
            print(f"ingest: {batches} batches of {args.batch} x {args.dims}")
            print("  (cpu: the command API's CPU time a 1,000 vectors, which the machine's load moves less)")
            ingests = {
                "HTTP, JSON float lists:   ": http_ingest(
                    commands, Bodies(args.batch, args.dims, packed=False), batches, args.batch
                ),
                "HTTP, packed base64:      ": http_ingest(
                    commands, Bodies(args.batch, args.dims, packed=True), batches, args.batch
                ),
                "gRPC stream, packed bytes:": grpc_ingest(vectors, batches, args.batch),
            }
            measured: dict[str, tuple[float, float]] = {}
            for name, ingest in ingests.items():
                # Each from a settled deployment: the writes before it applied and in HNSW, whose indexing
                # would otherwise take the cores from the one measured next.
                await settled(queries)
                before = cpu_seconds(command_api)
                rate = await ingest
                measured[name] = rate, (cpu_seconds(command_api) - before) / (batches * args.batch) * 1e6
            json_rate, json_cpu = next(iter(measured.values()))
            for name, (rate, cpu) in measured.items():
                print(
                    f"  {name} {rate:9,.0f} vectors/s accepted ({rate / json_rate:.1f}x JSON), "
                    f"cpu {cpu:5.1f} ms ({cpu / json_cpu:.2f}x JSON)"
                )

            await settled(queries)
            http_bodies = [
                post(
                    queries,
                    "/api/v1/datasets/bench/search?consistency=eventual",
                    b'{"k":10,"vector":[' + ",".join(f"{x:.6f}" for x in q).encode() + b"]}",
                    ADMIN_HEADERS,
                )
                for q in query_vectors
            ]
            grpc_bodies = [
                pb.SearchRequest(
                    dataset="bench",
                    query=pb.Query(vector=q.astype("<f4").tobytes(), k=10),
                    consistency=pb.Consistency(level="eventual"),
                ).SerializeToString()
                for q in query_vectors
            ]
            print(
                f"search, k=10, {args.rounds} rounds of {args.seconds:.0f} s a transport, HTTP and gRPC in turn; "
                "each line the median round (cpu: the query API's CPU time a search)"
            )
            for clients in (1, 8):
                rounds: dict[str, list[tuple[Load, float]]] = {"HTTP": [], "gRPC": []}
                for _ in range(args.rounds):
                    searches = {
                        "HTTP": run_load(
                            queries, lambda n: http_bodies[n % len(http_bodies)], clients, args.seconds
                        ),
                        "gRPC": grpc_search(grpc_bodies, clients, args.seconds),
                    }
                    for name, search in searches.items():
                        before = cpu_seconds(query_api)
                        load = await search
                        cpu = (cpu_seconds(query_api) - before) / (load.qps * args.seconds) * 1e6
                        rounds[name].append((load, cpu))
                for name, measured in rounds.items():
                    load, cpu = sorted(measured, key=lambda round_: round_[0].qps)[len(measured) // 2]
                    qps = ", ".join(f"{round_.qps:,.0f}" for round_, _ in measured)
                    print(
                        f"  {clients} client(s), {name}: {load.qps:7,.0f} QPS (rounds: {qps}), p50 "
                        f"{load.p50_ms:5.1f} ms, p99 {load.p99_ms:5.1f} ms, cpu {cpu:6.0f} us"
                    )


if __name__ == "__main__":
    asyncio.run(main())
