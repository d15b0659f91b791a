"""Latency of a search at a past version (`version` on a read): the read service's path without HTTP, on DeepLake in
a temp dir. A dataset of --rows vectors is written in commits of 10,000 (with metadata and text), then a tenth
of it is deleted and another tenth replaced; the search asks for the version before those writes.

    python -m bench.past_versions [--rows 100000] [--dims 384] [--searches 200]

Prints the first search at that version (cold: the version found, its projection loaded from DeepLake, the
exact scan; also its CPU time) and the next ones (warm: found again, the held projection scanned), unfiltered and with a filter,
and the memory the held projection counts against `past_versions_memory_bytes`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import numpy as np

from bench.snapshots import applied
from events import (
    CreateDataset,
    CreateDatasetPayload,
    DeleteVectors,
    DeleteVectorsPayload,
    UpsertVectors,
    UpsertVectorsPayload,
)
from events.filters import parse_filter
from query_api.past_versions import PastVersions
from query_api.searching import SearchPlan, run_search
from tributary.storage import DatasetStore

BATCH = 10_000
T, D = "bench", "docs"


def upsert(rng: np.random.Generator, ids: range, dims: int) -> UpsertVectors:
    payload = UpsertVectorsPayload(
        ids=[f"v{i}" for i in ids],
        vectors=rng.standard_normal((len(ids), dims)).astype(np.float32),
        texts=[f"record {i} in group {i % 10}" for i in ids],
        metadata=[{"i": i, "group": i % 10} for i in ids],
    )
    return UpsertVectors(tenant=T, dataset=D, payload=payload)


def search(past: PastVersions, version: str, query: np.ndarray, filtered: bool) -> int:
    """What Reader.at_version and a search do, without HTTP; the number of results."""
    ref = past.find(T, D, version)
    assert ref is not None
    served = past.get(T, D, ref)
    assert served is not None
    node = parse_filter({"group": 3}, served.projection.analyzer) if filtered else None
    plan = SearchPlan(
        mode="vector",
        vector=query,
        text=None,
        k=10,
        offset=0,
        filter=node,
        score_threshold=None,
        fusion="rrf",
        rrf_k=60,
        alpha=0.5,
        include=("metadata",),
    )
    results, _ = run_search(served, plan)
    return len(results)


def timed(past: PastVersions, version: str, queries: np.ndarray, filtered: bool) -> list[float]:
    seconds = []
    for query in queries:
        began = time.perf_counter()
        assert search(past, version, query, filtered) == 10
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(tmp)
        applied(
            store, [CreateDataset(tenant=T, dataset=D, payload=CreateDatasetPayload(dimensions=args.dims))]
        )
        for start in range(0, args.rows, BATCH):
            applied(store, [upsert(rng, range(start, min(start + BATCH, args.rows)), args.dims)])
        version = store.version(T, D)
        tenth = args.rows // 10
        gone = [f"v{i}" for i in range(tenth)]
        applied(store, [DeleteVectors(tenant=T, dataset=D, payload=DeleteVectorsPayload(ids=gone))])
        applied(store, [upsert(rng, range(tenth, 2 * tenth), args.dims)])
        past = PastVersions(store, budget_bytes=1 << 34)
        queries = rng.standard_normal((args.searches + 1, args.dims)).astype(np.float32)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu = time.process_time()
        (cold,) = timed(past, version, queries[:1], filtered=False)
        cpu = time.process_time() - cpu
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        print(
            f"{args.rows:,} x {args.dims}, reading version {version} after {len(gone):,} deletes and "
            f"{tenth:,} replaced"
        )
        # CPU time as well: on a shared machine it says more than the wall clock about the load's own cost.
        print(f"cold (find, load, exact scan)   {cold * 1000:9.1f} ms  ({cpu:.2f} s of CPU)")
        for name, filtered in (("warm", False), ("warm, filter group=3", True)):
            seconds = sorted(timed(past, version, queries[1:], filtered))
            p50, p95 = statistics.median(seconds), seconds[int(0.95 * (len(seconds) - 1))]
            print(f"{name:<31} {p50 * 1000:9.1f} ms p50  {p95 * 1000:7.1f} ms p95")
        print(
            f"held: {past.held_bytes / 1e6:.0f} MB counted against the budget; peak RSS grew {grown:.0f} MB "
            "at the cold load"
        )


if __name__ == "__main__":
    main()
