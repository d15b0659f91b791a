"""Recall you can set: the search breadth (`ef`) a projection tunes to a target recall, and what it gives on
queries the tuning never saw, with its QPS, beside the untuned breadth and an exact scan.

    python -m bench.recall [--target 0.99] [--real stdlib,man] [--synthetic 100000] [--dim 384] [--queries 1000]

Real data: the documents of bench/relevance_sets.py's labelled sets (Python's standard library docstrings and
Debian's manual pages) embedded with the packaged model, one dataset, queried with the sets' own queries (the
titles and NAME lines, texts of another kind than the documents). Synthetic: seeded clustered vectors
(bench/ann_data.py), queried with held-out draws. Each projection is built as a replica builds it (the dataset's
HNSW graph, then `tune`, then, as the replica's searches come, `tune` again on them), and searched as the query
API searches it (`DatasetProjection.search`, k = 10, one query at a time on one thread). Recall is against exact
search, on queries neither tuning saw. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.ann_data import VectorSource
from events.commands import IndexConfig
from query_api.projection import UNTUNED_EF, DatasetProjection
from query_api.tuning import SAMPLE, exact_top_k, recall_at_k

K = 10
CHUNK = 10_000


def build(
    rows: np.ndarray, target: float, metadata: Sequence[dict[str, Any]] | None = None
) -> tuple[DatasetProjection, float, float]:
    """The projection of `rows` (with their `metadata`), and the seconds its build and its tuning took."""
    projection = DatasetProjection(rows.shape[1], "cosine", index=IndexConfig(target_recall=target))
    started = time.perf_counter()
    with projection.lock.writing():
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            projection.upsert(
                [str(start + i) for i in range(len(chunk))],
                chunk,
                None,
                None if metadata is None else metadata[start : start + CHUNK],
            )
        projection.index_pending()
    built = time.perf_counter() - started
    projection.default.tune(seed=len(rows))
    return projection, built, time.perf_counter() - started - built


def measure(
    search: Callable[[np.ndarray], list[int]],
    queries: np.ndarray,
    truth: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """recall@10, and the seconds of `clock` a query takes, one search at a time."""
    for query in queries[:20]:
        search(query)
    found = []
    started = clock()
    for query in queries:
        found.append(search(query))
    return recall_at_k(np.array(found), truth), (clock() - started) / len(queries)


def report(name: str, rows: np.ndarray, queries: np.ndarray, target: float) -> None:
    """The first half of the queries is the traffic a replica tunes on once it has seen enough; the second
    half is measured."""
    print(f"{name}: {len(rows):,} x {rows.shape[1]}, {len(queries):,} queries", file=sys.stderr)
    projection, built, tuned = build(rows, target)
    on_rows = projection.default.tuning
    traffic, measured = queries[: len(queries) // 2], queries[len(queries) // 2 :]
    for query in traffic[-SAMPLE:]:
        with projection.lock.reading():
            projection.default.search(query, K, None)
    started = time.perf_counter()
    on_searches = projection.default.tune()
    retuned = time.perf_counter() - started
    truth = exact_top_k(rows, np.ones(len(rows), dtype=bool), measured, K, "cosine")

    def at(ef: int | None, exact: bool = False) -> Callable[[np.ndarray], list[int]]:
        def search(query: np.ndarray) -> list[int]:
            with projection.lock.reading():
                return [hit.slot for hit in projection.default.search(query, K, None, ef=ef, exact=exact)]

        return search

    print(
        f"\n**{name}** ({len(rows):,} x {rows.shape[1]}, target {target}; {len(measured):,} queries measured, "
        f"the {SAMPLE} before them the replica's searches): built in {built:.1f} s; tuned on queries made from "
        f"rows in {tuned:.2f} s to ef {on_rows.ef} (recall {on_rows.recall:.3f} on them), then on the searches "
        f"in {retuned:.2f} s to ef {on_searches.ef} (recall {on_searches.recall:.3f} on them)\n"
    )
    print("| search | recall@10 on the measured queries | QPS (one thread) |")
    print("| --- | --- | --- |")
    for label, search in (
        (f"tuned on searches, ef {on_searches.ef} (the default once a replica saw {SAMPLE})", at(None)),
        (f"tuned on queries made from rows, ef {on_rows.ef} (the default before)", at(on_rows.ef)),
        (f"untuned, ef {UNTUNED_EF} (every dataset before tuning existed)", at(UNTUNED_EF)),
        ("exact: true", at(None, exact=True)),
    ):
        recall, seconds = measure(search, measured, truth)
        print(f"| {label} | {recall:.4f} | {1 / seconds:,.0f} |")


def real(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from bench.relevance_sets import embeddings, man_set, stdlib_set

    builders = {"stdlib": stdlib_set, "man": man_set}
    docs, queries = [], []
    for name in names:
        labelled = builders[name]()
        docs.append(embeddings([doc.body for doc in labelled.docs]))
        queries.append(embeddings([query.text for query in labelled.tuning + labelled.test]))
    return np.concatenate(docs), np.concatenate(queries)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument(
        "--real", default="stdlib,man", help="labelled sets to embed, comma-separated; '' for none"
    )
    parser.add_argument("--synthetic", type=int, default=100_000, help="clustered vectors; 0 for none")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    # One core for searches, as a query process's worker thread; the build uses every core as a replica's load.
    if args.real:
        docs, queries = real(args.real.split(","))
        with threadpool_limits(1):
            report(f"real ({args.real})", docs, queries[: args.queries], args.target)
    if args.synthetic:
        drawn = VectorSource("clustered", args.dim, seed=7).draw(args.synthetic + args.queries)
        with threadpool_limits(1):
            report("clustered", drawn[: args.synthetic], drawn[args.synthetic :], args.target)


if __name__ == "__main__":
    main()
