"""Search through the HTTP query API: QPS, latency and recall@10, cold and cached, start-up, write-to-visible.

    eval "$(bash deploy/local/services.sh env)"    # Kafka mode needs the local services up
    python -m bench.search [--mode embedded|kafka] [--query-workers 1] [--redis] [--vectors 100000] [--dims 384] [--seconds 5]

Loads --vectors clustered vectors (metadata `bucket` 0..99, a text of topic words) through the command API,
then prints, for unfiltered, 1%-filtered (`{"bucket": 7}`) and hybrid (weighted, alpha 0.7) queries with 1, 8
and 32 concurrent clients: QPS and p50/p99 latency, cold (every query new) and cached (a small set repeated),
and recall@10 against exact numpy search. Then the query process's start-up time (restart until it answers)
and write-to-visible latency (a `session` read after each write) while ingesting 2,000 vectors/s. The
searches are sent by a lean keep-alive client (bench/http_load.py, about 0.07 ms of CPU a request), which
runs on the same machine and competes for its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.cluster import ADMIN_HEADERS, Processes, embedded_mode, kafka_mode, ready
from bench.http_load import Load, post, run_load

CLUSTERS = 200
BATCH = 1000


def packed(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


class Data:
    def __init__(self, n: int, dims: int) -> None:
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((CLUSTERS, dims)).astype(np.float32)
        self.cluster = rng.integers(0, CLUSTERS, n)
        self.vectors = centers[self.cluster] + 0.6 * rng.standard_normal((n, dims)).astype(np.float32)
        self.bucket = rng.integers(0, 100, n)
        self.normed = self.vectors / np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.queries = self.vectors[rng.choice(n, 200)] + 0.3 * rng.standard_normal((200, dims)).astype(
            np.float32
        )
        self.query_clusters = [int(self.cluster[np.argmax(self.normed @ q)]) for q in self.queries[:20]]

    def text(self, i: int) -> str:
        return f"topic{self.cluster[i]} item{i % 1000} group{self.bucket[i]}"

    def body(self, start: int, stop: int) -> bytes:
        records = [
            {
                "id": f"v{i}",
                "vector": packed(self.vectors[i]),
                "text": self.text(i),
                "metadata": {"bucket": int(self.bucket[i])},
            }
            for i in range(start, stop)
        ]
        return json.dumps({"vectors": records}).encode()

    def exact(self, query: np.ndarray, keep: np.ndarray | None) -> list[str]:
        scores = self.normed @ (query / np.linalg.norm(query))
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        return [f"v{i}" for i in np.argsort(-scores)[:10]]


async def load(
    commands: httpx.AsyncClient,
    queries: httpx.AsyncClient,
    data: Data,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """`transport`: the clients', when it is an in-process app's (httpx.ASGITransport)."""
    started = time.perf_counter()
    token = ""
    for start in range(0, len(data.vectors), BATCH):
        answer = await commands.post(
            "/api/v1/datasets/bench/vectors",
            content=data.body(start, min(start + BATCH, len(data.vectors))),
            headers={"content-type": "application/json"},
        )
        answer.raise_for_status()
        token = answer.json()["consistency_token"]
    while True:  # a session read answers 504 after its timeout while the backlog is still being applied
        visible = await queries.post(
            f"/api/v1/datasets/bench/count?consistency=session&token={token}", json={}
        )
        if visible.status_code != 504:
            visible.raise_for_status()
            break
    print(
        f"loaded {visible.json()['count']:,} vectors in {time.perf_counter() - started:.1f} s "
        "(accepted, applied, searchable)"
    )
    await indexed(str(queries.base_url), transport)
    print(
        f"all in HNSW after {time.perf_counter() - started:.1f} s (searches scan the rest exactly meanwhile)"
    )
    return token


async def indexed(url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
    """Until the query processes report nothing pending: each new connection may reach another one."""
    zeros = 0
    while zeros < 10:
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            metrics = (await client.get("/metrics")).text
        zeros = zeros + 1 if _pending(metrics) == 0 else 0
        await asyncio.sleep(0.1)


def _pending(metrics: str) -> float:
    """`tributary_vectors_pending_index` of a /metrics answer (prometheus_client writes it as a float)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "tributary_vectors_pending_index"
        for sample in family.samples
    )


async def measure(url: str, bodies: Callable[[int], dict[str, object]], clients: int, seconds: float) -> Load:
    path = "/api/v1/datasets/bench/search?consistency=eventual"
    return await run_load(
        url, lambda n: post(url, path, json.dumps(bodies(n)).encode(), ADMIN_HEADERS), clients, seconds
    )


async def recall(
    queries: httpx.AsyncClient, data: Data, extra: dict[str, object], keep: np.ndarray | None
) -> float:
    hits = []
    for query in data.queries[:100]:
        answer = await queries.post(
            "/api/v1/datasets/bench/search?consistency=eventual",
            json={"vector": packed(query), "k": 10, "include": [], **extra},
        )
        got = {r["id"] for r in answer.json()["results"]}
        hits.append(len(got & set(data.exact(query, keep))) / 10)
    return float(np.mean(hits))


async def searches(queries: httpx.AsyncClient, data: Data, seconds: float) -> None:
    url = str(queries.base_url).rstrip("/")
    rng = np.random.default_rng(5)
    noise = 0.01 * rng.standard_normal((4096, data.vectors.shape[1])).astype(np.float32)
    kinds: dict[str, dict[str, object]] = {
        "unfiltered": {},
        "1% filtered": {"filter": {"bucket": 7}},
        "hybrid": {"mode": "hybrid", "fusion": "weighted", "alpha": 0.7},
    }
    keeps = {"unfiltered": None, "1% filtered": data.bucket == 7}
    for kind, extra in kinds.items():
        if kind in keeps:
            print(f"{kind}: recall@10 {await recall(queries, data, extra, keeps[kind]):.3f}")

        def cold(n: int, extra: dict[str, object] = extra) -> dict[str, object]:
            # Every request a new vector: no cache hit.
            query = data.queries[n % 200] + noise[n % 4096] * (1 + n // 4096)
            text = {"text": f"topic{data.query_clusters[n % 20]}"} if "mode" in extra else {}
            return {"vector": packed(query), "k": 10, "include": [], **text, **extra}

        def cached(n: int, extra: dict[str, object] = extra) -> dict[str, object]:
            return cold(n % 20, extra)

        for clients in (1, 8, 32):
            for label, bodies in (("cold", cold), ("cached", cached)):
                if label == "cached":
                    await measure(url, bodies, 1, 0.5)  # warm the cache
                got = await measure(url, bodies, clients, seconds)
                print(
                    f"  {kind:11s} {clients:2d} clients {label:6s}: {got.qps:7.0f} QPS  "
                    f"p50 {got.p50_ms:6.2f} ms  p99 {got.p99_ms:7.2f} ms"
                )


async def startup(running: Processes, name: str, url: str) -> None:
    args, env = running.stop(name)
    started = time.perf_counter()
    running.start(name, args, env)
    await ready(url)
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=ADMIN_HEADERS) as client:
        answer = await client.post("/api/v1/datasets/bench/count?consistency=eventual", json={})
    print(
        f"{name} restarted and serving {answer.json()['count']:,} vectors after {time.perf_counter() - started:.1f} s"
    )


async def write_to_visible(
    commands: httpx.AsyncClient, queries: httpx.AsyncClient, data: Data, seconds: float
) -> None:
    per_request, rate = 100, 2000
    samples: list[float] = []

    async def one(n: int) -> None:
        started = time.perf_counter()
        ids = range(len(data.vectors) + n * per_request, len(data.vectors) + (n + 1) * per_request)
        records = [{"id": f"w{i}", "vector": packed(data.vectors[i % len(data.vectors)])} for i in ids]
        answer = await commands.post("/api/v1/datasets/bench/vectors", json={"vectors": records})
        token = answer.json()["consistency_token"]
        seen = await queries.get(
            f"/api/v1/datasets/bench/vectors/w{ids[0]}?consistency=session&token={token}"
        )
        seen.raise_for_status()
        samples.append(time.perf_counter() - started)

    tasks = []
    begin = time.perf_counter()
    for n in range(int(seconds * rate / per_request)):
        await asyncio.sleep(max(0.0, begin + n * per_request / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    samples.sort()
    print(
        f"write-to-visible at {rate:,} vectors/s: p50 {statistics.median(samples) * 1000:.0f} ms, "
        f"p99 {samples[int(len(samples) * 0.99)] * 1000:.0f} ms ({len(samples)} writes)"
    )


async def run(args: argparse.Namespace) -> None:
    data = Data(args.vectors, args.dims)
    with tempfile.TemporaryDirectory() as tmp:
        starter = (
            partial(kafka_mode, query_workers=args.query_workers, redis=args.redis)
            if args.mode == "kafka"
            else embedded_mode
        )
        async with (
            starter(Path(tmp)) as (command_url, query_url, running),
            httpx.AsyncClient(base_url=command_url, timeout=120, headers=ADMIN_HEADERS) as commands,
            httpx.AsyncClient(
                base_url=query_url,
                timeout=120,
                headers=ADMIN_HEADERS,
                limits=httpx.Limits(max_connections=64),
            ) as queries,
        ):
            created = await commands.post(
                "/api/v1/datasets?wait=true",
                json={"name": "bench", "dimensions": args.dims, "metadata_schema": {"bucket": "integer"}},
            )
            created.raise_for_status()
            workers = f", {args.query_workers} query-api processes" if args.mode == "kafka" else ""
            workers += ", Redis" if args.mode == "kafka" and args.redis else ""
            print(f"{args.mode} mode{workers}, {args.vectors:,} x {args.dims}")
            await load(commands, queries, data)
            await searches(queries, data, args.seconds)
            await startup(running, "query-api" if args.mode == "kafka" else "embedded", query_url)
            await write_to_visible(commands, queries, data, args.seconds * 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument(
        "--query-workers", type=int, default=1, help="query-api processes in Kafka mode (`serve --workers`)"
    )
    parser.add_argument(
        "--redis", action="store_true", help="Kafka mode with Redis: the shared cache and the rate limiter"
    )
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
