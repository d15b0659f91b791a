"""Memory and scale: a million real-embedding vectors with short texts and metadata in one embedded-mode process,
its resident memory and what each structure costs, its restart time and its QPS.

    nice -n 10 python -m bench.scale [--rows 1000000] [--batch 1000] [--seconds 10] [--clients 1,4] [--port 18182]

Data: the 100,000 manual-page passages of bench/relevance_sets.py (`man_passages`), embedded once with the
packaged model and cached, tiled to --rows: copy c > 0 of passage p is p's embedding plus Gaussian noise
(`NOISE` a component, about 0.3 in norm against 1) renormalised, with a text of `TEXT_WORDS` consecutive words of
p's passage (starting at word c mod 15) and metadata `{"bucket": 0..999, "section": one of 8 words}`.

Steps, against one `tributary serve` in embedded mode (the default mode):
1. its resident memory (VmRSS) once ready and empty;
2. --rows records streamed over gRPC (`UpsertStream`, --batch a message, the fastest ingest path), then wait
   until all are searchable (count) and in HNSW (`tributary_vectors_pending_index` 0); resident memory and its
   peak (VmHWM) then;
3. a restart: the time the process takes to stop (it saves its HNSW graph), then the time until it answers
   ready and serves a search over every row, and its resident memory after;
4. recall@10 against exact search over the rows on 200 queries (the labelled sets' query embeddings), after the
   next 1,000 were sent as the replica's traffic and it tuned its search breadth on them; then QPS of k=10
   searches (HTTP, packed float32 queries, eventual consistency) from each number of --clients;
5. what each structure costs: the same records upserted into a `DatasetProjection` in this process and sized
   with `DatasetProjection.memory` (HNSW from hnswlib's allocations for that many vectors, `hnsw_bytes`), beside
   the target: twice the raw float32 vectors plus the raw UTF-8 text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, ADMIN_KEY, Processes, embedded_mode, ready
from bench.http_load import post, run_load
from bench.recall import real
from bench.relevance_sets import embeddings, man_passages
from bench.search import indexed, packed
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from query_api.projection import DatasetProjection

K = 10
BASE_ROWS = 100_000
TEXT_WORDS = 10
NOISE = 0.015
NOISE_BLOCK = 1000
SECTIONS = ["name", "synopsis", "description", "options", "files", "examples", "bugs", "see-also"]
EXACT_QUERIES = 200
CHUNK = 10_000


@dataclass
class Rows:
    """The tiled records, made a range at a time, so the bench never holds them all."""

    base: np.ndarray
    words: list[list[str]]
    count: int

    def vectors(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1; a row's noise is drawn with its block of NOISE_BLOCK rows, so it is the same
        whatever range asks for it (the ingest's batches, the exact search's chunks)."""
        i = np.arange(start, stop)
        vectors = self.base[i % len(self.base)].copy()
        dims = vectors.shape[1]
        for block in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
            low, high = max(start, block * NOISE_BLOCK), min(stop, (block + 1) * NOISE_BLOCK)
            noise = np.random.default_rng(block).standard_normal((NOISE_BLOCK, dims)).astype(np.float32)
            vectors[low - start : high - start] += (
                NOISE * noise[low - block * NOISE_BLOCK : high - block * NOISE_BLOCK]
            )
        copies = i >= len(self.base)
        vectors[~copies] = self.base[i[~copies]]
        vectors[copies] /= np.linalg.norm(vectors[copies], axis=1, keepdims=True)
        return vectors

    def text(self, i: int) -> str:
        words = self.words[i % len(self.base)]
        first = (i // len(self.base)) % 15
        return " ".join(words[first : first + TEXT_WORDS] or words[:TEXT_WORDS])

    def metadata(self, i: int) -> dict[str, object]:
        return {"bucket": i * 7919 % 1000, "section": SECTIONS[i % len(SECTIONS)]}

    def chunks(self, size: int) -> Iterator[tuple[int, int, np.ndarray]]:
        for start in range(0, self.count, size):
            stop = min(start + size, self.count)
            yield start, stop, self.vectors(start, stop)


def rss(pid: int) -> tuple[int, int]:
    """Resident memory and its peak (VmRSS, VmHWM), bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


async def ingest(rows: Rows, batch: int, target: str) -> float:
    async def stream() -> AsyncIterator[pb.UpsertRequest]:
        for start, stop, vectors in rows.chunks(batch):
            yield pb.UpsertRequest(
                dataset="bench",
                records=[
                    pb.Record(
                        id=str(i),
                        vector=vectors[i - start].astype("<f4").tobytes(),
                        text=rows.text(i),
                        metadata_json=json.dumps(rows.metadata(i)),
                    )
                    for i in range(start, stop)
                ],
            )

    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        summary = await pb_grpc.VectorsStub(channel).UpsertStream(
            stream(), metadata=(("authorization", f"Bearer {ADMIN_KEY}"),)
        )
    assert summary.records == rows.count, summary
    return time.perf_counter() - started


async def serving_all(url: str, count: int, query: np.ndarray) -> None:
    """Until a count sees every row and a search answers."""
    async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=600) as client:
        while True:
            answer = await client.post("/api/v1/datasets/bench/count?consistency=eventual", json={})
            if answer.status_code == 200 and answer.json()["count"] == count:
                break
            await asyncio.sleep(0.5)
        found = await client.post(
            "/api/v1/datasets/bench/search?consistency=eventual", json={"k": K, "vector": packed(query)}
        )
        found.raise_for_status()


def exact(rows: Rows, queries: np.ndarray) -> np.ndarray:
    """The exact top K rows of each query by cosine similarity (the rows are unit vectors), a chunk at a time."""
    best = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for start, _, vectors in rows.chunks(100_000):
        scores = unit @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        best = np.concatenate([best, top + start], axis=1)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        keep = np.argsort(-best_scores, axis=1)[:, :K]
        best, best_scores = (
            np.take_along_axis(best, keep, axis=1),
            np.take_along_axis(best_scores, keep, axis=1),
        )
    return best


async def recall(url: str, queries: np.ndarray, truth: np.ndarray) -> float:
    found = 0
    async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=60) as client:
        for query, expected in zip(queries, truth, strict=True):
            answer = await client.post(
                "/api/v1/datasets/bench/search?consistency=eventual", json={"k": K, "vector": packed(query)}
            )
            answer.raise_for_status()
            ids = {int(hit["id"]) for hit in answer.json()["results"]}
            found += len(ids & set(expected.tolist()))
    return found / (K * len(queries))


def breakdown(rows: Rows) -> dict[str, int]:
    """The records in a projection of this process, sized by structure (its HNSW left unbuilt and counted from
    hnswlib's allocations)."""
    projection = DatasetProjection(rows.base.shape[1], "cosine")
    with projection.lock.writing():
        projection.reserve(rows.count)
        for start, stop, vectors in rows.chunks(CHUNK):
            ids = [str(i) for i in range(start, stop)]
            texts: list[str | None] = [rows.text(i) for i in range(start, stop)]
            metadata = [rows.metadata(i) for i in range(start, stop)]
            projection.upsert(ids, vectors, texts, metadata)
    return projection.memory()


async def run(args: argparse.Namespace) -> None:
    passages = man_passages(BASE_ROWS)
    rows = Rows(embeddings(passages), [passage.split() for passage in passages], args.rows)
    raw_vectors = rows.count * rows.base.shape[1] * 4
    raw_text = sum(len(rows.text(i).encode()) for i in range(rows.count))
    _, queries = real(["stdlib", "man"])
    measured = queries[:EXACT_QUERIES]
    print(
        f"{rows.count:,} x {rows.base.shape[1]} rows: raw vectors {mb(raw_vectors)}, raw text {mb(raw_text)}"
    )
    with tempfile.TemporaryDirectory() as work:
        async with embedded_mode(Path(work), args.port, args.port + 10) as (url, _, running):
            pid = running.pid("embedded")
            print(f"ready and empty: resident {mb(rss(pid)[0])}")
            async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=60) as client:
                created = await client.post(
                    "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": rows.base.shape[1]}
                )
                created.raise_for_status()
            started = time.perf_counter()
            accepted = await ingest(rows, args.batch, f"127.0.0.1:{args.port + 10}")
            await serving_all(url, rows.count, measured[0])
            searchable = time.perf_counter() - started
            await indexed(url)
            print(
                f"ingest: accepted in {accepted:.0f} s ({rows.count / accepted:,.0f} vectors/s), all searchable "
                f"after {searchable:.0f} s, all in HNSW after {time.perf_counter() - started:.0f} s"
            )
            resident, peak = rss(pid)
            print(f"loaded: resident {mb(resident)}, peak {mb(peak)}")
            pid, restarted = await restart(running, url, rows.count, measured[0])
            resident, peak = rss(pid)
            print(
                f"restarted: ready and serving all rows after {restarted:.0f} s; resident {mb(resident)}, peak {mb(peak)}"
            )
            truth = exact(rows, measured)
            # The replica tunes its search breadth on its recent searches: the rest of the queries first.
            await recall(url, queries[EXACT_QUERIES:][:1000], exact(rows, queries[EXACT_QUERIES:][:1000]))
            await indexed(url)
            print(await tuned(url))
            print(f"recall@{K} against exact search: {await recall(url, measured, truth):.4f}")
            bodies = [
                post(url, "/api/v1/datasets/bench/search?consistency=eventual", body, ADMIN_HEADERS)
                for body in (json.dumps({"k": K, "vector": packed(q)}).encode() for q in queries)
            ]
            for clients in (int(c) for c in args.clients.split(",")):
                load = await run_load(url, lambda n: bodies[n % len(bodies)], clients, args.seconds)
                print(
                    f"search k={K}, {clients} client(s): {load.qps:,.0f} QPS, p50 {load.p50_ms:.1f} ms, "
                    f"p99 {load.p99_ms:.1f} ms"
                )
            resident = rss(pid)[0]
    parts = breakdown(rows)
    target = 2 * raw_vectors + raw_text
    print("\n| structure | bytes a row | total |\n| --- | ---: | ---: |")
    for name, size in parts.items():
        print(f"| {name} | {size / rows.count:,.0f} | {mb(size)} |")
    print(f"| sum of the structures | {sum(parts.values()) / rows.count:,.0f} | {mb(sum(parts.values()))} |")
    print(f"| resident (after restart and searches) | {resident / rows.count:,.0f} | {mb(resident)} |")
    print(f"| target: 2 x raw vectors + raw text | {target / rows.count:,.0f} | {mb(target)} |")


async def tuned(url: str) -> str:
    """Once the replica has tuned its search breadth on its recent searches (the indexer's next idle turn): what
    it chose."""
    async with httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=60) as client:
        for _ in range(1200):
            state = (await client.get("/api/v1/admin/datasets/bench/index")).json()
            if state["tuned_on"] == "searches":
                break
            await asyncio.sleep(1)
    return f"ef tuned to {state['ef']} on {state['tuned_on']}: recall@10 {state['measured_recall']}"


async def restart(running: Processes, url: str, count: int, query: np.ndarray) -> tuple[int, float]:
    stopping = time.perf_counter()
    # A replica saves its HNSW graph as it stops (query_api/saved_graphs.py): 1.7 GB to write at a million.
    args, env = running.stop("embedded", timeout=600)
    print(f"stopped (saving its HNSW graph) in {time.perf_counter() - stopping:.0f} s")
    started = time.perf_counter()
    running.start("embedded", args, env)
    # Loading a million rows from DeepLake and building their HNSW graph takes minutes.
    await ready(url, timeout=3600)
    await serving_all(url, count, query)
    return running.pid("embedded"), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--port", type=int, default=18182, help="HTTP; gRPC on the port 10 above")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
