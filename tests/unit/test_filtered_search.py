"""Filtered search equals a brute-force oracle: random metadata and random filters (hypothesis) on the exact
path, and recall@10 >= 0.95 at 1% and 10% selectivity on 100,000 vectors through the index."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from events.filters import parse_filter
from query_api.projection import DatasetProjection
from tests.unit.test_filters import FILTERS, UNIVERSE, oracle

DIMS = 8
VECTORS = np.random.default_rng(0).standard_normal((len(UNIVERSE), DIMS)).astype(np.float32)


def cosine_top(vectors: np.ndarray, query: np.ndarray, rows: list[int], k: int) -> list[int]:
    if not rows:
        return []
    chosen = vectors[rows]
    scores = chosen @ query / (np.linalg.norm(chosen, axis=1) * np.linalg.norm(query))
    return [rows[i] for i in np.argsort(-scores, kind="stable")[:k]]


@settings(max_examples=150, deadline=None)
@given(
    raw=FILTERS,
    deleted=st.sets(st.integers(0, len(UNIVERSE) - 1), max_size=10),
    query=st.integers(0, len(UNIVERSE) - 1),
)
def test_exact_filtered_search_equals_the_oracle(raw: dict[str, Any], deleted: set[int], query: int) -> None:
    projection = DatasetProjection(DIMS, "cosine")
    projection.upsert([f"r{i}" for i in range(len(UNIVERSE))], VECTORS, None, UNIVERSE)
    projection.delete([f"r{i}" for i in deleted])
    vector = VECTORS[query] + 0.1
    hits = projection.default.search(vector, 10, projection.allowed(parse_filter(raw)))
    keep = [i for i, row in enumerate(UNIVERSE) if i not in deleted and oracle(raw, row)]
    assert [projection.id_of(hit.slot) for hit in hits] == [
        f"r{i}" for i in cosine_top(VECTORS, vector, keep, 10)
    ]


def test_filtered_recall_at_1_and_10_percent_on_100k_vectors() -> None:
    rng = np.random.default_rng(1)
    n, dims = 100_000, 32
    centers = rng.standard_normal((200, dims))
    vectors = (centers[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, dims))).astype(np.float32)
    bucket = rng.integers(0, 100, n)
    projection = DatasetProjection(dims, "cosine")
    started = time.perf_counter()
    for start in range(0, n, 10_000):
        stop = start + 10_000
        projection.upsert(
            [f"v{i}" for i in range(start, stop)],
            vectors[start:stop],
            None,
            [{"bucket": int(b)} for b in bucket[start:stop]],
        )
    projection.index_pending()
    print(f"indexed {n} x {dims} in {time.perf_counter() - started:.1f} s")
    queries = vectors[rng.choice(n, 50)] + 0.3 * rng.standard_normal((50, dims)).astype(np.float32)
    for raw, selectivity in [({"bucket": 7}, 0.01), ({"bucket": {"$lt": 10}}, 0.10)]:
        allowed = projection.allowed(parse_filter(raw))
        assert allowed is not None
        rows = np.flatnonzero([(b == 7) if selectivity == 0.01 else (b < 10) for b in bucket]).tolist()
        recalls = []
        for query in queries:
            got = {projection.id_of(hit.slot) for hit in projection.default.search(query, 10, allowed)}
            truth = {f"v{i}" for i in cosine_top(vectors, query, rows, 10)}
            recalls.append(len(got & truth) / 10)
        print(f"recall@10 at {selectivity:.0%} selectivity: {np.mean(recalls):.3f}")
        assert np.mean(recalls) >= 0.95
