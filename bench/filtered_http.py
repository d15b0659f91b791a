"""Filtered search through the HTTP API on real embeddings: recall@10 and p50 latency at each selectivity against
the unfiltered search, in one embedded-mode process.

    python -m bench.filtered_http [--rows 100000] [--queries 1000] [--selectivity 0.01,0.05,0.1,0.3,0.5]

Rows: `--rows` passages cut from Debian's manual pages (bench/relevance_sets.py, `man_passages`), embedded once
with the packaged model and cached; each has a `bucket` 0..999 (a random permutation), and a selectivity s is the
filter `{"bucket": {"$lt": 1000 s}}`. Queries: the labelled sets' queries (standard library summaries, manual NAME
lines). The first half are sent unfiltered as the replica's traffic (its `ef` is tuned on its searches), the
second half measured: each query is sent once unfiltered and once at each selectivity, in turn, so every line
shares the machine's load of the same moments; one client on a keep-alive connection, eventual consistency, and
no answer comes from the search cache (every request differs). recall@10 is against exact search over the
allowed rows; p50 and p99 are the client's latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, embedded_mode
from bench.filtered import BUCKETS, bucketed_passages
from bench.http_load import post, read_answer
from bench.search import indexed, packed
from query_api.tuning import exact_top_k

K, BATCH = 10, 2000
SEARCH = "/api/v1/datasets/bench/search?consistency=eventual"


async def load(url: str, rows: np.ndarray, bucket: np.ndarray) -> None:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=300) as client:
        created = await client.post(
            "/api/v1/datasets?wait=true",
            json={"name": "bench", "dimensions": rows.shape[1], "metadata_schema": {"bucket": "integer"}},
        )
        created.raise_for_status()
        for start in range(0, len(rows), BATCH):
            stop = min(start + BATCH, len(rows))
            records = [
                {"id": str(i), "vector": packed(rows[i]), "metadata": {"bucket": int(bucket[i])}}
                for i in range(start, stop)
            ]
            answer = await client.post("/api/v1/datasets/bench/vectors?wait=true", json={"vectors": records})
            answer.raise_for_status()
    await indexed(url)
    print(f"loaded and indexed {len(rows):,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def body(query: np.ndarray, share: float | None) -> bytes:
    request: dict[str, object] = {"k": K, "vector": packed(query)}
    if share is not None:
        request["filter"] = {"bucket": {"$lt": round(share * BUCKETS)}}
    return json.dumps(request).encode()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--selectivity", default="0.01,0.05,0.1,0.3,0.5")
    args = parser.parse_args()
    rows, queries, bucket = bucketed_passages(args.rows, args.queries)
    traffic, measured = queries[: len(queries) // 2], queries[len(queries) // 2 :]
    shares: list[float | None] = [None, *(float(s) for s in args.selectivity.split(","))]
    truths = {
        share: exact_top_k(
            rows,
            np.ones(len(rows), bool) if share is None else bucket < round(share * BUCKETS),
            measured,
            K,
            "cosine",
        )
        for share in shares
    }
    with tempfile.TemporaryDirectory() as work:
        async with embedded_mode(Path(work)) as (url, _, _running):
            await load(url, rows, bucket)
            parts = urlsplit(url)
            connection: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

            async def search(query: np.ndarray, share: float | None) -> tuple[float, list[int]]:
                if not connection:  # the server closes a connection left idle
                    connection.append(await asyncio.open_connection(parts.hostname, parts.port))
                reader, writer = connection[0]
                request = post(url, SEARCH, body(query, share), ADMIN_HEADERS)
                began = time.perf_counter()
                writer.write(request)
                status, answer = await read_answer(reader)
                elapsed = time.perf_counter() - began
                if status != 200:
                    raise RuntimeError(f"answer {status}: {answer[:300]!r}")
                return elapsed, [int(hit["id"]) for hit in json.loads(answer)["results"]]

            for query in traffic:
                await search(query, None)
            await indexed(url)
            connection.pop()[1].close()
            latencies: dict[float | None, list[float]] = {share: [] for share in shares}
            recalls: dict[float | None, list[float]] = {share: [] for share in shares}
            for i, query in enumerate(measured):
                for share in shares:
                    elapsed, found = await search(query, share)
                    latencies[share].append(elapsed * 1000)
                    recalls[share].append(len(set(found) & set(truths[share][i].tolist())) / K)
            connection.pop()[1].close()
    plain = statistics.median(latencies[None])
    print(f"{len(rows):,} x {rows.shape[1]} passages, {len(measured)} queries measured a line, k = {K}\n")
    print("| selectivity | allowed rows | recall@10 | p50 ms | p99 ms | p50 x unfiltered |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for share in shares:
        allowed = len(rows) if share is None else int((bucket < round(share * BUCKETS)).sum())
        times = sorted(latencies[share])
        p50 = statistics.median(times)
        print(
            f"| {'none' if share is None else f'{share:.0%}'} | {allowed:,} | {statistics.mean(recalls[share]):.4f} "
            f"| {p50:.2f} | {times[int(len(times) * 0.99)]:.2f} | {p50 / plain:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
