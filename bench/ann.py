"""ANN libraries for the query side's per-dataset in-memory index: hnswlib, usearch and faiss (HNSW and IVF).

    python -m bench.ann [--n 100000] [--dim 384] [--queries 1000] [--filter-queries 200] [--churn 500]
                        [--data clustered,uniform] [--libs hnswlib,usearch,faiss-hnsw,faiss-ivf] [--metric cosine]

For each data set (seeded) and library it prints Markdown tables: bulk build time and resident memory; single-query
latency, QPS and recall@10 against exact numpy search at several search efforts (ef, or nprobe for IVF);
filtered search at each selectivity through the library's filter mechanism, with recall against exact filtered
search; the per-operation cost of deletes, in-place updates and inserts, and recall once they are applied.
It also times the exact numpy scan of an allow-list of a given size, the alternative when a filter keeps few rows.
Searches run one query at a time on one thread; builds use every core. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata

import numpy as np
from threadpoolctl import threadpool_limits

from bench.ann_data import DataKind, ExactSearch, Ids, Vectors, VectorSource, recall
from bench.ann_indexes import LIBRARIES, AnnIndex, GraphParams, installed

WARMUP = 20


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    qps: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Latency:
        ordered = sorted(samples_ns)
        return cls(
            p50_ms=ordered[len(ordered) // 2] / 1e6,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6,
            qps=1e9 / statistics.fmean(ordered),
        )


def timed(search: Callable[[Vectors], Ids], queries: Vectors) -> tuple[list[Ids], Latency]:
    for query in queries[:WARMUP]:
        search(query)
    found: list[Ids] = []
    samples: list[int] = []
    for query in queries:
        start = time.perf_counter_ns()
        found.append(search(query))
        samples.append(time.perf_counter_ns() - start)
    return found, Latency.of(samples)


def op_costs_us(apply: Callable[[int], None], count: int) -> str:
    samples: list[float] = []
    for i in range(count):
        start = time.perf_counter_ns()
        apply(i)
        samples.append((time.perf_counter_ns() - start) / 1e3)
    samples.sort()
    return f"{samples[len(samples) // 2]:,.0f} / {samples[int(len(samples) * 0.99)]:,.0f}"


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class Table:
    def __init__(self, title: str, *columns: str) -> None:
        self.title = title
        self.columns = columns
        self.rows: list[tuple[object, ...]] = []

    def add(self, *cells: object) -> None:
        self.rows.append(cells)

    def print(self) -> None:
        if not self.rows:
            return
        print(f"\n{self.title}\n")
        print("| " + " | ".join(self.columns) + " |")
        print("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(self.columns))) + "|")
        for row in self.rows:
            print("| " + " | ".join(_cell(c) for c in row) + " |")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Churn:
    """The same deletes, in-place updates and inserts for every library, and the ground truth after them."""

    deleted: Ids
    updated: Ids
    update_vectors: Vectors
    inserted: Ids
    insert_vectors: Vectors
    truth_after: Ids

    @classmethod
    def plan(
        cls, source: VectorSource, exact_after: ExactSearch, n: int, count: int, queries: Vectors, k: int
    ) -> Churn:
        rng = np.random.default_rng(1)
        touched = rng.choice(n, 2 * count, replace=False)
        deleted, updated = touched[:count], touched[count:]
        inserted = np.arange(n, n + count, dtype=np.int64)
        update_vectors, insert_vectors = source.draw(count), source.draw(count)
        exact_after.set_rows(updated, update_vectors)
        exact_after.set_rows(inserted, insert_vectors)
        live = np.setdiff1d(np.arange(n + count, dtype=np.int64), deleted)
        return cls(
            deleted,
            updated,
            update_vectors,
            inserted,
            insert_vectors,
            exact_after.top_k(queries, k, rows=live),
        )


@dataclass(frozen=True)
class Filter:
    selectivity: float
    allowed: Ids
    truth: Ids


class Report:
    def __init__(self, args: argparse.Namespace, kind: DataKind) -> None:
        shape = f"{args.n:,} x {args.dim}, {args.metric}, seed {args.seed}"
        self.build = Table(
            f"#### {kind}: bulk build ({shape}; M={args.m}, ef_construction={args.ef_construction})",
            "library",
            "build s",
            "RSS growth MB",
        )
        self.search = Table(
            f"#### {kind}: unfiltered search, k={args.k}, one thread, {args.queries} queries",
            "library",
            "effort",
            "recall@10",
            "p50 ms",
            "p99 ms",
            "QPS",
        )
        self.filtered = Table(
            f"#### {kind}: filtered search, {args.filter_queries} queries",
            "library",
            "filter",
            "selectivity",
            "effort",
            "recall@10",
            "p50 ms",
            "p99 ms",
            "QPS",
            "filter build ms",
        )
        self.scan = Table(
            f"#### {kind}: exact numpy scan of an allow-list, one BLAS thread",
            "rows",
            "gather + scan p50 ms",
            "p99 ms",
            "pre-gathered p50 ms",
        )
        self.churn = Table(
            f"#### {kind}: {args.churn:,} single deletes, updates and inserts (p50 / p99 µs per op), then recall",
            "library",
            "delete",
            "update",
            "insert",
            "recall@10 after, per effort",
        )

    def tables(self) -> Iterator[Table]:
        yield from (self.build, self.search, self.filtered, self.scan, self.churn)


def efforts(args: argparse.Namespace, library: str, filtered: bool = False) -> list[int]:
    if LIBRARIES[library][2] == "nprobe":
        return list(args.filter_nprobe if filtered else args.nprobe)
    return list(args.filter_ef if filtered else args.ef)


def bench_library(
    library: str,
    args: argparse.Namespace,
    base: Vectors,
    queries: Vectors,
    truth: Ids,
    filters: list[Filter],
    churn: Churn,
    report: Report,
) -> None:
    factory = LIBRARIES[library][1]
    gc.collect()
    before = rss_mb()
    index: AnnIndex = factory(
        args.dim, args.metric, args.n + args.churn, GraphParams(args.m, args.ef_construction, args.ivf_lists)
    )
    start = time.perf_counter()
    index.add_bulk(np.arange(args.n, dtype=np.int64), base)
    report.build.add(library, time.perf_counter() - start, rss_mb() - before)
    progress(f"  {library}: built")

    for effort in efforts(args, library):
        index.set_effort(effort)
        found, latency = timed(lambda q: index.search(q, args.k), queries)
        report.search.add(library, effort, recall(found, truth), latency.p50_ms, latency.p99_ms, latency.qps)

    filter_queries = queries[: args.filter_queries]
    for flt in filters:
        start = time.perf_counter()
        allowed = index.make_filter(flt.allowed)
        build_ms = (time.perf_counter() - start) * 1e3
        for effort in sorted(
            {*efforts(args, library, filtered=True), *index.wide_filter_efforts(args.k, flt.selectivity)}
        ):
            index.set_effort(effort)
            search = functools.partial(index.filtered_search, k=args.k, allowed=allowed)
            found, latency = timed(search, filter_queries)
            report.filtered.add(
                library,
                index.filter_kind,
                f"{flt.selectivity:.0%}",
                effort,
                recall(found, flt.truth),
                latency.p50_ms,
                latency.p99_ms,
                latency.qps,
                build_ms,
            )
    progress(f"  {library}: searched")

    deletes = op_costs_us(lambda i: index.delete(int(churn.deleted[i])), args.churn)
    updates = op_costs_us(lambda i: index.update(int(churn.updated[i]), churn.update_vectors[i]), args.churn)
    inserts = op_costs_us(lambda i: index.insert(int(churn.inserted[i]), churn.insert_vectors[i]), args.churn)
    after = []
    for effort in efforts(args, library):
        index.set_effort(effort)
        found, _ = timed(lambda q: index.search(q, args.k), queries)
        after.append(f"{effort}: {recall(found, churn.truth_after):.3f}")
    report.churn.add(library, deletes, updates, inserts, ", ".join(after))
    progress(f"  {library}: churned")


def exact_scanner(exact: ExactSearch, k: int, rows: Ids | None = None) -> Callable[[Vectors], Ids]:
    def scan(query: Vectors) -> Ids:
        return np.asarray(exact.top_k(query[None], k, rows=rows)[0], np.int64)

    return scan


def bench_exact_scan(exact: ExactSearch, queries: Vectors, sizes: list[int], k: int, report: Report) -> None:
    rng = np.random.default_rng(2)
    with threadpool_limits(1):
        for size in sizes:
            rows = np.sort(rng.choice(exact.size, size, replace=False))
            _, gathered = timed(exact_scanner(exact, k, rows), queries)
            _, contiguous = timed(exact_scanner(ExactSearch(exact.rows(rows), exact.metric), k), queries)
            report.scan.add(f"{size:,}", gathered.p50_ms, gathered.p99_ms, contiguous.p50_ms)


def bench_data(kind: DataKind, args: argparse.Namespace, libraries: list[str]) -> None:
    progress(f"{kind}: generating and computing exact neighbours")
    source = VectorSource(kind, args.dim, args.seed)
    base = source.draw(args.n)
    queries = source.draw(args.queries)
    exact = ExactSearch(base, args.metric)
    truth = exact.top_k(queries, args.k)
    rng = np.random.default_rng(args.seed + 1)
    filters = []
    for selectivity in args.selectivity:
        allowed = np.sort(rng.choice(args.n, max(args.k, int(args.n * selectivity)), replace=False))
        filters.append(
            Filter(selectivity, allowed, exact.top_k(queries[: args.filter_queries], args.k, rows=allowed))
        )
    churn = Churn.plan(source, ExactSearch(base, args.metric), args.n, args.churn, queries, args.k)

    report = Report(args, kind)
    bench_exact_scan(
        exact, queries[: args.filter_queries], [s for s in args.scan_rows if s <= args.n], args.k, report
    )
    for library in libraries:
        bench_library(library, args, base, queries, truth, filters, churn, report)
        gc.collect()
    for table in report.tables():
        table.print()


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="queries for unfiltered search")
    parser.add_argument(
        "--filter-queries", type=int, default=200, help="queries for filtered search and scans"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--metric", choices=["cosine", "ip", "l2"], default="cosine")
    parser.add_argument("--data", type=lambda s: s.split(","), default=["clustered", "uniform"])
    parser.add_argument("--libs", type=lambda s: s.split(","), default=list(LIBRARIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--m", type=int, default=16, help="HNSW links per node")
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ivf-lists", type=int, default=256)
    parser.add_argument("--ef", type=int_list, default=[16, 32, 64, 128, 256], help="HNSW search efforts")
    parser.add_argument("--nprobe", type=int_list, default=[4, 8, 16, 32], help="IVF lists probed")
    parser.add_argument(
        "--filter-ef", type=int_list, default=[16, 64], help="HNSW efforts for filtered search"
    )
    parser.add_argument(
        "--filter-nprobe", type=int_list, default=[8, 32], help="IVF efforts for filtered search"
    )
    parser.add_argument(
        "--selectivity", type=lambda s: [float(p) for p in s.split(",")], default=[0.01, 0.03, 0.1]
    )
    parser.add_argument("--scan-rows", type=int_list, default=[1000, 2000, 5000, 10_000, 20_000])
    parser.add_argument("--churn", type=int, default=500, help="deletes, updates and inserts, each")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    unknown = [name for name in args.libs if name not in LIBRARIES]
    if unknown:
        raise SystemExit(f"unknown libraries {unknown}; choose from {list(LIBRARIES)}")
    libraries = [name for name in args.libs if installed(name)]
    for name in sorted(set(args.libs) - set(libraries)):
        progress(f"skipping {name}: not installed (pip install {LIBRARIES[name][0]})")
    versions = ", ".join(f"{dist} {_version(dist)}" for dist in ("numpy", "hnswlib", "usearch", "faiss-cpu"))
    print(f"ANN benchmark: {versions}; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    for kind in args.data:
        bench_data(kind, args, libraries)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
