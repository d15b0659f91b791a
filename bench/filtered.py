"""Filtered vector search: each route of query_api/filtered.py, and the route the rule picks, at each selectivity,
on real text embedded with the packaged model.

    python -m bench.filtered [--rows 40000] [--queries 1000] [--target 0.99]
        [--selectivity 0.001,0.01,0.05,0.078,0.1,0.3,0.8] [--oversample 1.5,2,3] [--routed-only]

Rows: `--rows` passages cut from Debian's manual pages (bench/relevance_sets.py, `man_passages`); queries: the
labelled sets' queries (standard library summaries, manual NAME lines), texts of another kind than the rows.
Each row has a `bucket` 0..999 (a random permutation), and a selectivity s is the filter
`{"bucket": {"$lt": 1000 s}}`. The projection is built and tuned as a replica does it (bench/recall.py, then
tuned again on the first half of the queries as its searches); the second half is measured, one query at a time
on one thread, evaluating the filter's mask each time as a search does. CPU is the thread's CPU time per query;
recall@10 is against exact search over the allowed rows; "rows per candidate at par" is the
`ROWS_PER_CANDIDATE` at which the rule would find both routes equally costly (the candidates HNSW is asked for
in brackets). `--oversample` also measures the post-filter route
at other oversampling factors than the one in the code. `--routed-only` measures only the search as the query
API runs it (`DatasetProjection.search`) filtered and unfiltered, which runs on older commits too (for a
before/after). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from bench.recall import build, measure, real
from bench.relevance_sets import embeddings, man_passages
from events.filters import parse_filter
from query_api.projection import DatasetProjection
from query_api.tuning import SAMPLE, exact_top_k

if TYPE_CHECKING:
    # Not imported at run time: with --routed-only this runs on commits from before query_api/filtered.py.
    from query_api.filtered import Route

K = 10
BUCKETS = 1000

Search = Callable[[np.ndarray], list[int]]


def cpu_measure(search: Search, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """recall@10 and CPU ms per query (every selectivity keeps at least k rows)."""
    recall, seconds = measure(search, queries, truth, time.thread_time)
    return recall, seconds * 1000


def searcher(projection: DatasetProjection, raw: dict[str, object] | None, by: Route | None = None) -> Search:
    node = None if raw is None else parse_filter(raw)

    def search(query: np.ndarray) -> list[int]:
        with projection.lock.reading():
            allowed = projection.allowed(node)
            if by is None:
                return [hit.slot for hit in projection.default.search(query, K, allowed)]
            return [hit.slot for hit in projection.default.search(query, K, allowed, by=by)]

    return search


def oversampled_by(
    factor: float,
    projection: DatasetProjection,
    raw: dict[str, object],
    queries: np.ndarray,
    truth: np.ndarray,
) -> str:
    """The post-filter route's recall and CPU at another oversampling factor than the code's."""
    from query_api import filtered

    default, filtered.OVERSAMPLE = filtered.OVERSAMPLE, factor
    try:
        recall, cpu_ms = cpu_measure(searcher(projection, raw, "post_filter"), queries, truth)
    finally:
        filtered.OVERSAMPLE = default
    return f"{recall:.4f} / {cpu_ms:.3f}"


def par(costs: dict[Route, float], allowed: int, indexed: int) -> str:
    """The ROWS_PER_CANDIDATE at which the two routes would cost the same: (post-filter CPU per candidate) /
    (exact CPU per allowed row)."""
    from query_api.filtered import oversampled

    candidates = oversampled(K, allowed, indexed)
    return f"{(costs['post_filter'] / candidates) / (costs['exact'] / max(allowed, 1)):.1f} ({candidates:,})"


def bucketed_passages(rows: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rows` manual-page passages embedded, the first `queries` of the labelled sets' queries, and each row's
    bucket 0..BUCKETS-1 (a random permutation, so a selectivity s is the rows of bucket < BUCKETS x s)."""
    print(f"embedding {rows:,} passages (cached after the first run)", file=sys.stderr)
    passages = embeddings(man_passages(rows))
    _, labelled = real(["stdlib", "man"])
    return passages, labelled[:queries], np.random.default_rng(0).permutation(len(passages)) % BUCKETS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--selectivity", default="0.001,0.01,0.05,0.078,0.1,0.3,0.8")
    parser.add_argument("--oversample", default="", help="other post-filter oversampling factors to measure")
    parser.add_argument("--routed-only", action="store_true")
    args = parser.parse_args()

    rows, queries, bucket = bucketed_passages(args.rows, args.queries)
    metadata = [{"bucket": int(b)} for b in bucket]
    with threadpool_limits(1):
        projection, built, _ = build(rows, args.target, metadata)
        traffic, measured = queries[: len(queries) // 2], queries[len(queries) // 2 :]
        for query in traffic[-SAMPLE:]:
            with projection.lock.reading():
                projection.default.search(query, K, None)
        tuning = projection.default.tune()
        print(
            f"{len(rows):,} x {rows.shape[1]} passages, built in {built:.1f} s, ef tuned to {tuning.ef} "
            f"on the searches; {len(measured)} queries measured, k = {K}, one thread\n"
        )
        unfiltered_truth = exact_top_k(rows, np.ones(len(rows), dtype=bool), measured, K, "cosine")
        recall, unfiltered_ms = cpu_measure(searcher(projection, None), measured, unfiltered_truth)
        print(f"unfiltered: recall@10 {recall:.4f}, {unfiltered_ms:.3f} ms CPU a query\n")
        routes: list[Route] = [] if args.routed_only else ["exact", "post_filter"]
        factors = [float(f) for f in args.oversample.split(",") if f]
        header = ["selectivity", "allowed rows", "routed: recall / CPU ms / x unfiltered"]
        header += [f"{name}: recall / CPU ms" for name in routes]
        header += ["rows per candidate at par"] if routes else []
        header += [f"post_filter x{factor:g}: recall / CPU ms" for factor in factors]
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for share in (float(s) for s in args.selectivity.split(",")):
            raw: dict[str, object] = {"bucket": {"$lt": round(share * BUCKETS)}}
            allowed = bucket < round(share * BUCKETS)
            truth = exact_top_k(rows, allowed, measured, K, "cosine")
            recall, cpu_ms = cpu_measure(searcher(projection, raw), measured, truth)
            cells = [f"{share:.1%}", f"{int(allowed.sum()):,}"]
            cells.append(f"{recall:.4f} / {cpu_ms:.3f} / {cpu_ms / unfiltered_ms:.2f}")
            costs = {}
            for name in routes:
                recall, costs[name] = cpu_measure(searcher(projection, raw, name), measured, truth)
                cells.append(f"{recall:.4f} / {costs[name]:.3f}")
            if routes:
                cells.append(par(costs, int(allowed.sum()), len(rows)))
            cells += [oversampled_by(factor, projection, raw, measured, truth) for factor in factors]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
