"""The BM25 text index at scale: bulk load, search with and without an allow-mask, set and delete.

    python -m bench.text_index [--docs 100000] [--vocabulary 50000] [--zipf 1.0] [--queries 300]
                               [--churn 5000] [--seed 0]

Synthetic corpus (seeded): documents of 10 to 60 words drawn from a Zipfian vocabulary (the word of rank r has
probability proportional to 1/r^s) of random lower-case words, the frequent ones shorter. Prints the bulk load
time (`set_many`) and the memory the index holds, then search latency (k=10) for three kinds of 2-5 word
queries, unfiltered and with random masks keeping 10% and 1% of the slots:

- zipf: words drawn like the text's, so a quarter of them are among the ten found in over 25% of the documents;
- rare: words of rank 1,000 and beyond, each in well under 1% of the documents;
- common: words among the 50 most frequent, found in 6% to 96% of the documents (the worst case).

Last, the cost of `set` (a replacement, a new document in a free slot) and `delete`, per call (median and p99)
and amortised (the mean, which carries the compactions), and search latency again once that churn has left
stale entries behind. One thread, one query at a time; times are wall-clock, so on a shared machine the load
average printed at the start and the end tells how far to trust the p99s. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from query_api.text_index import TextIndex

K = 10
WARMUP = 20
KINDS = ("zipf", "rare", "common")


@dataclass(frozen=True)
class Corpus:
    vocabulary: list[str]
    cumulative: npt.NDArray[np.float64]
    rng: np.random.Generator

    @classmethod
    def make(cls, size: int, exponent: float, rng: np.random.Generator) -> Corpus:
        words: set[str] = set()
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        while len(words) < size:
            for length in rng.integers(3, 11, size - len(words)).tolist():
                words.add("".join(rng.choice(letters, length)))
        weights = 1 / np.arange(1, size + 1) ** exponent
        return cls(sorted(words, key=len), np.cumsum(weights / weights.sum()), rng)

    def ranks(self, count: int) -> npt.NDArray[np.int64]:
        drawn = np.searchsorted(self.cumulative, self.rng.random(count), side="right")
        return np.minimum(drawn, len(self.vocabulary) - 1)

    def texts(self, count: int) -> list[str]:
        lengths = self.rng.integers(10, 61, count)
        ranks = self.ranks(int(lengths.sum())).tolist()
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        return [" ".join(self.vocabulary[r] for r in ranks[bounds[i] : bounds[i + 1]]) for i in range(count)]

    def queries(self, kind: str, count: int) -> list[str]:
        queries = []
        for length in self.rng.integers(2, 6, count).tolist():
            if kind == "zipf":
                ranks = self.ranks(length)
            elif kind == "rare":
                ranks = self.rng.integers(1000, len(self.vocabulary), length)
            else:
                ranks = self.rng.integers(0, 50, length)
            queries.append(" ".join(self.vocabulary[r] for r in ranks.tolist()))
        return queries


def percentiles_us(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1e3
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e3
    return p50, p99, statistics.fmean(ordered) / 1e3


def timed(call: Callable[[int], object], count: int) -> list[int]:
    samples = []
    for i in range(count):
        start = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - start)
    return samples


def search_table(
    index: TextIndex, queries: dict[str, list[str]], masks: dict[str, npt.NDArray[np.bool_] | None]
) -> None:
    print("| queries | filter | p50 ms | p99 ms | mean hits |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind, texts in queries.items():
        for label, mask in masks.items():
            for text in texts[:WARMUP]:
                index.search(text, K, mask)
            hits: list[int] = []
            samples = timed(lambda i: hits.append(len(index.search(texts[i], K, mask)[0])), len(texts))  # noqa: B023
            p50, p99, _ = percentiles_us(samples)
            print(f"| {kind} | {label} | {p50 / 1e3:.3f} | {p99 / 1e3:.3f} | {statistics.fmean(hits):.1f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--churn", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print("making the corpus", file=sys.stderr)
    corpus = Corpus.make(args.vocabulary, args.zipf, rng)
    texts = corpus.texts(args.docs)
    slots = np.arange(args.docs)
    words = sum(len(text.split()) for text in texts)
    print(
        f"## {args.docs:,} documents, {words / args.docs:.1f} words each on average, "
        f"vocabulary {args.vocabulary:,} (Zipf s={args.zipf})\n"
    )

    print(f"load average at the start: {', '.join(f'{load:.2f}' for load in os.getloadavg())}\n")
    index = TextIndex()
    start = time.perf_counter()
    index.set_many(slots, texts)
    load_s = time.perf_counter() - start
    # Memory on a second load, under tracemalloc (which numpy reports to), since tracing slows a load.
    tracemalloc.start()
    measured = TextIndex()
    measured.set_many(slots, texts)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del measured
    print(
        f"bulk load (set_many): {load_s:.2f} s; the index holds {held / 2**20:.0f} MB, {peak / 2**20:.0f} MB at the peak\n"
    )

    queries = {kind: corpus.queries(kind, args.queries) for kind in KINDS}
    masks: dict[str, npt.NDArray[np.bool_] | None] = {
        "none": None,
        "10%": rng.random(args.docs) < 0.10,
        "1%": rng.random(args.docs) < 0.01,
    }
    print("### search, k=10\n")
    search_table(index, queries, masks)

    print("### writes\n")
    print("| operation | p50 us | p99 us | mean us |")
    print("| --- | ---: | ---: | ---: |")
    churn = args.churn
    new_texts = corpus.texts(3 * churn)
    victims = rng.choice(args.docs, 2 * churn, replace=False).tolist()
    rows = [
        ("set, replacing a document", lambda i: index.set(victims[i], new_texts[i])),
        ("delete", lambda i: index.delete(victims[churn + i])),
        ("set, into a freed slot", lambda i: index.set(victims[churn + i], new_texts[churn + i])),
    ]
    for label, call in rows:
        p50, p99, mean = percentiles_us(timed(call, churn))
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {mean:.1f} |")
    print()

    print(f"### search after that churn ({3 * churn:,} writes), k=10\n")
    search_table(index, queries, masks)
    print(f"load average at the end: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
