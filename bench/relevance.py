"""Search quality on labelled retrieval sets: recall@10 and MRR of vector, text (BM25, by each text analysis) and
hybrid search (by each analysis and fusion), on the test halves of the sets of bench/relevance_sets.py, and the
defaults chosen on their tuning halves.

    nice -n 19 python -m bench.relevance [--sets stdlib,man]

The first run embeds the sets with the packaged local model (all-minilm-l6-v2: a few minutes; cached under
~/.cache/tributary/relevance). Searches run in process, over the query service's own pieces: `TextIndex` with
each analysis, the fusions of query_api/fusion.py with HYBRID_CANDIDATES from each side, and an exact cosine
scan for the vector side (the ANN index's own recall is bench/ann.py's subject).

Choosing. Each fusion's weight `alpha` (the vector side's) is chosen on the tuning halves, by the mean over the
sets of recall@10 + MRR; the default analysis is the one whose text search scores best there, and the default
fusion the best of the fusions at their chosen alpha, with the default analysis. The table shows the test halves
only, where nothing was chosen.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.relevance_sets import LabelledSet, embeddings, man_set, stdlib_set
from events.analysis import DEFAULT_ANALYSIS, ENGLISH_STOP_WORDS, PLAIN_WORDS, TextAnalysis, analyzer_for
from query_api.fusion import dbsf, min_max, rrf
from query_api.searching import HYBRID_CANDIDATES
from query_api.text_index import TextIndex
from schemas.search import DEFAULT_ALPHA, DEFAULT_FUSION
from tests.retrieval_corpus import Query, mrr, recall_at

K = 10
RRF_K = 60
ALPHAS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
ANALYSES: dict[str, TextAnalysis] = {
    "plain words (before)": PLAIN_WORDS,
    "identifiers, folding": TextAnalysis(language=None, stop_words=False),
    "identifiers, stop words": TextAnalysis(language=None, stop_words=tuple(sorted(ENGLISH_STOP_WORDS))),
    "identifiers, stemming": TextAnalysis(stop_words=False),
    "words, stemming, stop words": TextAnalysis(tokenizer="words"),
    "identifiers, stemming, stop words": DEFAULT_ANALYSIS,
}
Ranking = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
Fuse = Callable[[Ranking, Ranking, float], Ranking]
FUSIONS: dict[str, Fuse] = {
    "rrf": lambda v, t, alpha: rrf([v[0], t[0]], k=RRF_K, weights=[alpha, 1 - alpha]),
    "min_max": min_max,
    "dbsf": dbsf,
}


@dataclass
class Prepared:
    """One half of one set: each query's vector ranking and its text ranking by each analysis."""

    ids: list[str]
    relevant: list[str]
    vector: list[Ranking]
    text: dict[str, list[Ranking]]

    def score(self, rankings: Sequence[Ranking]) -> tuple[float, float]:
        named = [[self.ids[slot] for slot in slots[:HYBRID_CANDIDATES].tolist()] for slots, _ in rankings]
        return recall_at(K, named, self.relevant), mrr(named, self.relevant)

    def hybrid(self, analysis: str, fusion: str, alpha: float) -> tuple[float, float]:
        fuse = FUSIONS[fusion]
        return self.score([fuse(v, t, alpha) for v, t in zip(self.vector, self.text[analysis], strict=True)])


def prepare(labelled: LabelledSet) -> tuple[Prepared, Prepared]:
    queries = labelled.tuning + labelled.test
    doc_vectors = embeddings([doc.body for doc in labelled.docs])
    query_vectors = embeddings([query.text for query in queries])
    ids = [doc.id for doc in labelled.docs]
    indexes = {}
    for name, analysis in ANALYSES.items():
        index = TextIndex(analyzer=analyzer_for(analysis))
        index.set_many(range(len(ids)), [doc.body for doc in labelled.docs])
        indexes[name] = index

    def half(chosen: list[Query], vectors: npt.NDArray[np.float32]) -> Prepared:
        similarities = vectors @ doc_vectors.T
        best = np.argsort(-similarities, axis=1, kind="stable")[:, :HYBRID_CANDIDATES]
        vector = [
            (row.astype(np.int64), sims[row].astype(np.float64))
            for row, sims in zip(best, similarities, strict=True)
        ]
        text = {
            name: [index.search(query.text, HYBRID_CANDIDATES) for query in chosen]
            for name, index in indexes.items()
        }
        return Prepared(ids, [query.relevant for query in chosen], vector, text)

    tuning = len(labelled.tuning)
    return half(labelled.tuning, query_vectors[:tuning]), half(labelled.test, query_vectors[tuning:])


SETS: dict[str, Callable[[], LabelledSet]] = {"stdlib": stdlib_set, "man": man_set}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    names = parser.parse_args().sets.split(",")
    halves = {}
    for name in names:
        labelled = SETS[name]()
        halves[name] = prepare(labelled)
        print(
            f"{name}: {len(labelled.docs)} documents, {len(labelled.tuning)} tuning and {len(labelled.test)} test queries"
        )

    def tuned(measure: Callable[[Prepared], tuple[float, float]]) -> float:
        """The tuning figure: recall@10 + MRR, averaged over the sets."""
        return float(np.mean([sum(measure(tuning)) for tuning, _ in halves.values()]))

    def text_figure(analysis: str) -> float:
        return tuned(lambda half: half.score(half.text[analysis]))

    def hybrid_figure(fusion: str, alpha: float) -> float:
        return tuned(lambda half: half.hybrid(best_analysis, fusion, alpha))

    best_analysis = max(ANALYSES, key=text_figure)
    alphas = {fusion: max(ALPHAS, key=lambda alpha, f=fusion: hybrid_figure(f, alpha)) for fusion in FUSIONS}
    best_fusion = max(FUSIONS, key=lambda fusion: hybrid_figure(fusion, alphas[fusion]))
    print(
        f"\nchosen on the tuning halves: analysis {best_analysis!r}, fusion {best_fusion} alpha {alphas[best_fusion]}"
    )
    print("each fusion's alpha: " + ", ".join(f"{f} {a}" for f, a in alphas.items()))
    defaults = [name for name, a in ANALYSES.items() if a == DEFAULT_ANALYSIS]
    print(f"configured defaults: analysis {defaults}, fusion {DEFAULT_FUSION} alpha {DEFAULT_ALPHA}")

    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    tests = {name: test for name, (_, test) in halves.items()}
    rows.append(("vector", {n: t.score(t.vector) for n, t in tests.items()}))
    for analysis in ANALYSES:
        rows.append((f"text, {analysis}", {n: t.score(t.text[analysis]) for n, t in tests.items()}))
    for analysis in ANALYSES:
        for fusion, alpha in alphas.items():
            label = f"hybrid {fusion} a={alpha}, {analysis}"
            rows.append((label, {n: t.hybrid(analysis, fusion, alpha) for n, t in tests.items()}))
    default = f"hybrid {DEFAULT_FUSION} a={DEFAULT_ALPHA}, defaults"
    default_analysis = defaults[0] if defaults else best_analysis
    rows.append(
        (default, {n: t.hybrid(default_analysis, DEFAULT_FUSION, DEFAULT_ALPHA) for n, t in tests.items()})
    )

    width = max(len(label) for label, _ in rows)
    print(f"\ntest halves, k = {K}: recall@10 / MRR")
    print(f"| {'search':<{width}} | " + " | ".join(f"{n:^13}" for n in tests) + " |")
    print(f"| {'-' * width} | " + " | ".join("-" * 13 for _ in tests) + " |")
    for label, figures in rows:
        cells = " | ".join(f"{figures[n][0]:.3f} / {figures[n][1]:.3f}" for n in tests)
        print(f"| {label:<{width}} | {cells} |")
    print()
    for n in tests:
        singles = [figures[n] for label, figures in rows if not label.startswith("hybrid")]
        best_single = max(r for r, _ in singles)
        hybrid_recall = rows[-1][1][n][0]
        print(
            f"{n}: default hybrid recall@10 {hybrid_recall:.3f}, best single mode {best_single:.3f}: "
            f"{100 * (hybrid_recall - best_single):+.1f} points"
        )


if __name__ == "__main__":
    main()
