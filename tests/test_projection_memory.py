"""What loading and tuning a projection hold at their peak, on DeepLake in a temp dir: no moment holds a second
copy of every vector (at 1M x 384 one was 1.5 GB more, bench/scale.py). Peaks are numpy's allocations as
tracemalloc sees them (hnswlib's own are not traced)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from events import CreateDataset, CreateDatasetPayload, UpsertVectors, UpsertVectorsPayload
from query_api.registry import LOAD_CHUNK, load_dataset
from query_api.tuning import exact_top_k, sample_queries
from tributary.storage import DatasetStore
from workers.applier import apply_commands

T, DIMS = "acme", 256
ROWS = 3 * LOAD_CHUNK


def traced_peak() -> int:
    return tracemalloc.get_traced_memory()[1]


def test_loading_indexes_chunk_by_chunk_without_a_second_copy_of_the_vectors(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    apply_commands(
        [CreateDataset(tenant=T, dataset="docs", payload=CreateDatasetPayload(dimensions=DIMS))], store
    )
    vectors = np.random.default_rng(0).standard_normal((ROWS, DIMS)).astype(np.float32)
    for start in range(0, ROWS, LOAD_CHUNK):
        ids = [f"v{i}" for i in range(start, start + LOAD_CHUNK)]
        payload = UpsertVectorsPayload(ids=ids, vectors=vectors[start : start + LOAD_CHUNK])
        apply_commands([UpsertVectors(tenant=T, dataset="docs", payload=payload)], store)
    tracemalloc.start()
    try:
        served = load_dataset(store, T, "docs")
        peak = traced_peak()
    finally:
        tracemalloc.stop()
    assert served is not None and served.projection.default.indexed == ROWS
    # The projection's own copy, a chunk's worth in flight, and the other structures (2.5x when the load indexed
    # every row at once).
    assert peak < vectors.nbytes * 2.25, (peak, vectors.nbytes)


def test_tuning_makes_no_copy_of_the_rows() -> None:
    rows = np.random.default_rng(1).standard_normal((ROWS, 1024)).astype(np.float32)
    everyone = np.ones(ROWS, dtype=bool)
    tracemalloc.start()
    try:
        queries = sample_queries(rows, everyone, "cosine", seed=0)
        found = exact_top_k(rows, everyone, queries, 10, "cosine")
        peak = traced_peak()
    finally:
        tracemalloc.stop()
    assert found.shape == (len(queries), 10)
    # The blocks of scores alone (a normalised copy of the rows, and the squares of every row for each block,
    # came on top).
    assert peak < rows.nbytes, (peak, rows.nbytes)
