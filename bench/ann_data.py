"""Seeded vector sets for the ANN benchmark, and the exact numpy search that every recall is measured against."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Metric = Literal["cosine", "ip", "l2"]
DataKind = Literal["clustered", "uniform"]
Vectors = NDArray[np.float32]
Ids = NDArray[np.int64]

# About 400 points per cluster, and a spread that keeps clusters apart: the neighbours of a query are mostly in
# its own cluster, as with real embeddings, while the uniform set is the structureless worst case for a graph.
POINTS_PER_CLUSTER = 400
CLUSTER_SPREAD = 0.5


class VectorSource:
    """Draws vectors of one kind; the base set and the queries come from the same distribution."""

    def __init__(self, kind: DataKind, dim: int, seed: int) -> None:
        self.kind = kind
        self.dim = dim
        self._rng = np.random.default_rng(seed)
        self._centres: Vectors | None = None

    def draw(self, count: int) -> Vectors:
        if self.kind == "uniform":
            return self._rng.uniform(-1.0, 1.0, (count, self.dim)).astype(np.float32)
        if self._centres is None:
            clusters = max(1, count // POINTS_PER_CLUSTER)
            self._centres = self._rng.standard_normal((clusters, self.dim)).astype(np.float32)
        assigned = self._rng.integers(0, len(self._centres), count)
        noise = self._rng.standard_normal((count, self.dim)).astype(np.float32) * CLUSTER_SPREAD
        return np.asarray(self._centres[assigned] + noise, np.float32)


def normalised(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), np.float32)


class ExactSearch:
    """Brute-force top-k over a matrix whose rows may be replaced, for ground truth and the exact-scan path.

    Scores are "higher is closer" for every metric: L2 uses 2·x·q - |x|², which orders rows as -|x - q|² does.
    """

    def __init__(self, vectors: Vectors, metric: Metric) -> None:
        self.metric = metric
        self._matrix = self._prepare(vectors)
        self._sq_norms = np.einsum("ij,ij->i", self._matrix, self._matrix)

    def _prepare(self, vectors: Vectors) -> Vectors:
        return normalised(vectors) if self.metric == "cosine" else np.ascontiguousarray(vectors, np.float32)

    @property
    def size(self) -> int:
        return len(self._matrix)

    def rows(self, rows: Ids) -> Vectors:
        return self._matrix[rows]

    def set_rows(self, rows: Ids, vectors: Vectors) -> None:
        """Writes vectors at rows, growing the matrix when a row is past its end."""
        needed = int(rows.max()) + 1
        if needed > len(self._matrix):
            grown = np.zeros((needed, self._matrix.shape[1]), np.float32)
            grown[: len(self._matrix)] = self._matrix
            self._matrix = grown
            self._sq_norms = np.concatenate(
                [self._sq_norms, np.zeros(needed - len(self._sq_norms), np.float32)]
            )
        prepared = self._prepare(vectors)
        self._matrix[rows] = prepared
        self._sq_norms[rows] = np.einsum("ij,ij->i", prepared, prepared)

    def scores(self, queries: Vectors, rows: Ids | None = None) -> NDArray[np.float32]:
        matrix = self._matrix if rows is None else self._matrix[rows]
        prepared = self._prepare(queries)
        product: NDArray[np.float32] = prepared @ matrix.T
        if self.metric == "l2":
            norms = self._sq_norms if rows is None else self._sq_norms[rows]
            product = 2 * product - norms
        return product

    def top_k(self, queries: Vectors, k: int, rows: Ids | None = None, block: int = 256) -> Ids:
        """Ids (row numbers) of the k best rows for each query, best first; rows restricts the candidates."""
        found = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), block):
            scores = self.scores(queries[start : start + block], rows)
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(scores, best, axis=1).argsort(axis=1)[:, ::-1]
            chosen = np.take_along_axis(best, order, axis=1)
            found[start : start + block] = chosen if rows is None else rows[chosen]
        return found


def recall(found: list[Ids], truth: Ids) -> float:
    """Mean share of each query's true top-k that the search returned (missing results count as misses)."""
    k = int(truth.shape[1])
    hits: int = sum(len(np.intersect1d(got[:k], want)) for got, want in zip(found, truth, strict=True))
    return hits / (k * len(truth))
