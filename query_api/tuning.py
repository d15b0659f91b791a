"""Tuning a dataset's HNSW search breadth (`ef`) to its target recall, and holding it while searches run.

Recall@10 against exact search depends on the data and on the queries: the same `ef` finds 0.999 of the true
neighbours of one set and 0.98 of another's. So each replica measures it on the dataset itself
(query_api/indexer.py, in the background, when the index was built and whenever it doubled since, and once more
when it has seen `SAMPLE` searches): on the replica's last `SAMPLE` query vectors when it has seen that many, or
else on `SAMPLE` queries made from indexed rows, each moved away from its row in a random direction by `NOISE`
times the distance to the row's nearest neighbour, so that a query sits away from the rows as a real one does
rather than on one; their exact top 10 among the indexed rows;
and the HNSW answer at each `ef` of `LADDER`, smallest first, until one reaches the target. The smallest such
`ef` is kept (the largest of the ladder when none does, with the recall it measured).

`ef` is one setting of an hnswlib index, not an argument of a search: `EfGate` lets any number of searches
run at one `ef` at a time, and a search that needs another waits for them to finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from events.commands import Metric

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

TUNING_K = 10
SAMPLE = 200
# Real queries are often texts of another kind than the documents (a title for a body), further from them than
# a document is from its neighbour. On bench/recall.py's real set, target 0.99: a displacement of once the
# nearest distance tuned ef to 16-24 and real queries got 0.962-0.981; twice, ef 48-64 and 0.994-0.997. It
# errs wide where queries are like the rows (clustered data: ef 256 where 100 gave 0.9985), until the
# replica's own searches replace it.
NOISE = 2.0
LADDER = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# Tuned again once the index holds this many times the rows it was tuned on.
GROWTH = 2
# Queries scored against every row at once: bounds the score matrix (64 x 1M float32 = 256 MB would not do).
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class Tuning:
    """A search breadth, and the recall@10 it measured on `rows` indexed rows (0: not measured)."""

    ef: int
    recall: float = 0.0
    rows: int = 0
    target: float = 0.0
    # Measured on the replica's own recent searches, not on queries made from rows.
    on_searches: bool = False

    @property
    def short(self) -> bool:
        """Measured, and short of the target even at the widest breadth tried."""
        return bool(self.rows) and self.recall < self.target


def due(tuning: Tuning, indexed: int, searches: int) -> bool:
    """Whether an index of `indexed` rows should be tuned (again): never tuned (`rows` 0), grown, or tuned on
    rows while `searches` recent searches could stand for the real queries now."""
    if indexed == 0:
        return False
    grown = indexed >= GROWTH * max(tuning.rows, 1)
    return grown or (not tuning.on_searches and searches >= SAMPLE)


def smallest_ef(measure: Callable[[int], float], target: float, ladder: tuple[int, ...] = LADDER) -> Tuning:
    """The smallest `ef` of the ladder whose measured recall reaches `target`, tried in increasing order (recall
    grows with `ef`; the larger ones, the costly ones, are only measured when the smaller fall short)."""
    recall = 0.0
    for ef in ladder:
        recall = measure(ef)
        if recall >= target:
            return Tuning(ef=ef, recall=recall, target=target)
    return Tuning(ef=ladder[-1], recall=recall, target=target)


def recall_at_k(found: Ids, truth: Ids) -> float:
    """Mean share of each query's true top k that `found` holds (labels; -1 or short rows are misses)."""
    if truth.size == 0:
        return 1.0
    hits = sum(len(np.intersect1d(got, want)) for got, want in zip(found, truth, strict=True))
    return hits / truth.size


def closeness(
    rows: Vectors, queries: Vectors, metric: Metric, squares: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Higher is closer, one row per query: cosine similarity, dot product, or -|x - q|² up to a constant.
    `squares`: each row's squared norm (`squared_norms`)."""
    product: npt.NDArray[np.float32] = queries @ rows.T
    if metric == "cosine":
        norms = np.maximum(np.sqrt(squares) * np.linalg.norm(queries, axis=1)[:, None], 1e-30)
        return np.asarray(product / norms, dtype=np.float32)
    if metric == "l2":
        return np.asarray(2 * product - squares, dtype=np.float32)
    return product


def squared_norms(rows: Vectors) -> npt.NDArray[np.float32]:
    """|r|² of each row, with no temporary the size of `rows` (np.linalg.norm makes one: 1.5 GB at 1M x 384)."""
    return np.asarray(np.einsum("ij,ij->i", rows, rows), dtype=np.float32)


def exact_top_k(
    rows: Vectors, allowed: npt.NDArray[np.bool_], queries: Vectors, k: int, metric: Metric
) -> Ids:
    """The labels (row numbers) of each query's k closest allowed rows, best first."""
    k = min(k, int(np.count_nonzero(allowed)))
    found = np.empty((len(queries), k), np.int64)
    block = max(1, _BLOCK_CELLS // max(len(rows), 1))
    squares = squared_norms(rows)
    for start in range(0, len(queries), block):
        scores = closeness(rows, queries[start : start + block], metric, squares)
        scores[:, ~allowed] = -np.inf
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        found[start : start + block] = np.take_along_axis(best, order, axis=1)
    return found


def sample_queries(rows: Vectors, allowed: npt.NDArray[np.bool_], metric: Metric, seed: int) -> Vectors:
    """Up to `SAMPLE` queries near allowed rows: each row moved, in a random direction, by `NOISE` times the
    distance to its nearest other allowed row (cosine: measured on the unit sphere, as the metric sees it)."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(allowed)
    chosen = rng.choice(candidates, size=min(SAMPLE, len(candidates)), replace=False)

    def placed(picked: npt.NDArray[np.int64]) -> Vectors:
        # Cosine sees the rows on the unit sphere: only the rows used are moved there, not a copy of them all.
        chosen_rows = np.asarray(rows[picked], dtype=np.float32)
        if metric != "cosine":
            return chosen_rows
        return np.asarray(
            chosen_rows / np.maximum(np.linalg.norm(chosen_rows, axis=1, keepdims=True), 1e-30),
            dtype=np.float32,
        )

    origins = placed(chosen)
    if len(candidates) > 1:
        # The second closest is the nearest other row (the closest is the row itself); on the unit sphere the
        # closest in l2 are the closest by cosine.
        nearest = exact_top_k(rows, allowed, origins, 2, "cosine" if metric == "cosine" else "l2")[:, 1]
        distance = np.linalg.norm(placed(nearest) - origins, axis=1)
    else:
        distance = np.linalg.norm(origins, axis=1)
    direction = rng.standard_normal(origins.shape).astype(np.float32)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-30)
    return np.asarray(origins + direction * (NOISE * distance)[:, None], dtype=np.float32)


class EfGate:
    """Searches at one `ef` share the index; one at another `ef` waits until they are done, then sets it.
    Arrivals at the current `ef` wait behind a search that waits for another, so none waits forever."""

    def __init__(self, set_ef: Callable[[int], None], ef: int) -> None:
        self._set_ef = set_ef
        self._ef = ef
        set_ef(ef)
        self._users = 0
        self._waiting = 0
        self._cond = threading.Condition()

    @contextmanager
    def at(self, ef: int) -> Iterator[None]:
        with self._cond:
            if not (self._ef == ef and not self._waiting):
                self._waiting += 1
                self._cond.wait_for(lambda: self._users == 0)
                self._waiting -= 1
                if self._ef != ef:
                    self._set_ef(ef)
                    self._ef = ef
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()
