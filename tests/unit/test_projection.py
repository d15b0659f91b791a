"""The in-memory search projection: exact answers on the exact-scan path, high recall through HNSW, writes found
before they are indexed, deleted ids and replaced vectors never returned, slots reused, metadata filters applied
inside the search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from events.filters import parse_filter
from query_api.projection import DatasetProjection, fingerprints
from query_api.sizes import deep_size


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = (vectors @ query) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    return list(np.argsort(-scores, kind="stable")[:k])


@pytest.fixture
def data() -> tuple[np.ndarray, list[dict[str, object]]]:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((20, 32))
    vectors = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32))).astype(np.float32)
    metadata: list[dict[str, object]] = [{"group": int(i % 100), "even": i % 2 == 0} for i in range(3000)]
    return vectors, metadata


def test_recall_and_filtered_search(data: tuple[np.ndarray, list[dict[str, object]]]) -> None:
    vectors, metadata = data
    projection = DatasetProjection(32, "cosine")
    ids = [f"v{i}" for i in range(len(vectors))]
    projection.upsert(ids, vectors, None, metadata)
    assert projection.index_pending() == len(vectors) and projection.pending == 0
    rng = np.random.default_rng(4)
    recalls = []
    queries = vectors[rng.choice(len(vectors), 30)] + 0.3 * rng.standard_normal((30, 32)).astype(np.float32)
    for query in queries:
        got = [projection.id_of(hit.slot) for hit in projection.default.search(query, 10, None)]
        recalls.append(len(set(got) & {f"v{i}" for i in brute_force(vectors, query, 10)}) / 10)
    assert np.mean(recalls) >= 0.95

    # 1% of the rows: the exact path, so the answer is exactly the brute force over the allowed rows.
    node = parse_filter({"group": 7})
    allowed = projection.allowed(node)
    assert allowed is not None and allowed.sum() == 30
    query = rng.standard_normal(32).astype(np.float32)
    keep = np.flatnonzero([m["group"] == 7 for m in metadata])
    expected = [f"v{keep[i]}" for i in brute_force(vectors[keep], query, 10)]
    assert [projection.id_of(hit.slot) for hit in projection.default.search(query, 10, allowed)] == expected


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "pending"])
def test_deleted_ids_never_come_back_and_slots_are_reused(
    indexed: bool, data: tuple[np.ndarray, list[dict[str, object]]]
) -> None:
    vectors, metadata = data
    projection = DatasetProjection(32, "cosine")
    projection.upsert([f"v{i}" for i in range(100)], vectors[:100], None, metadata[:100])
    if indexed:
        projection.index_pending()
    query = vectors[5]
    assert projection.id_of(projection.default.search(query, 1, None)[0].slot) == "v5"
    projection.delete(["v5"])
    assert "v5" not in {projection.id_of(hit.slot) for hit in projection.default.search(query, 100, None)}
    assert projection.allowed(parse_filter({"group": 5})).sum() == 0  # type: ignore[union-attr]
    projection.upsert(["new"], vectors[5:6], ["hello"], [{"group": 5}])
    if indexed:
        projection.index_pending()
    assert projection.slot("new") == 5, "the freed slot is reused"
    assert projection.id_of(projection.default.search(query, 1, None)[0].slot) == "new"
    assert projection.text(5) == "hello" and projection.metadata(5) == {"group": 5}
    assert len(projection) == 100


def true_scores(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    if metric == "l2":
        return np.asarray(np.linalg.norm(vectors - query, axis=1))
    dots = vectors @ query
    if metric == "dot":
        return np.asarray(dots)
    return np.asarray(dots / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)))


def best(metric: str, truth: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(truth if metric == "l2" else -truth, kind="stable")[:k]


@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_other_metrics_rank_like_brute_force(
    metric: str, data: tuple[np.ndarray, list[dict[str, object]]]
) -> None:
    vectors, metadata = data
    projection = DatasetProjection(32, metric)  # type: ignore[arg-type]
    projection.upsert([f"v{i}" for i in range(500)], vectors[:500], None, metadata[:500])
    query = vectors[600]
    allowed = projection.allowed(parse_filter({"even": True}))
    hits = projection.default.search(query, 5, allowed)
    subset = np.arange(0, 500, 2)
    truth = true_scores(metric, vectors[subset], query)
    order = best(metric, truth, 5)
    assert [h.score for h in hits] == pytest.approx(truth[order].tolist(), rel=1e-5)
    assert [h.slot for h in hits] == list(subset[order])


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_a_half_indexed_projection_finds_pending_writes_and_never_a_replaced_vector(
    metric: str, data: tuple[np.ndarray, list[dict[str, object]]]
) -> None:
    vectors, metadata = data
    projection = DatasetProjection(32, metric)  # type: ignore[arg-type]
    projection.upsert([f"v{i}" for i in range(1000)], vectors[:1000], None, metadata[:1000])
    projection.index_pending()
    projection.upsert([f"v{i}" for i in range(1000, 2000)], vectors[1000:2000], None, metadata[1000:2000])
    # The first 50 indexed vectors move elsewhere: their old HNSW places must never answer for them.
    projection.upsert([f"v{i}" for i in range(50)], vectors[2000:2050], None, metadata[:50])
    current = np.concatenate([vectors[2000:2050], vectors[50:2000]])
    assert projection.pending == 1050
    rng = np.random.default_rng(8)
    queries = np.concatenate([vectors[:20], vectors[rng.choice(2000, 20)]])
    for stage in ("half indexed", "indexed"):
        recalls = []
        for query in queries:
            truth = true_scores(metric, current, query)
            order = best(metric, truth, 10)
            hits = projection.default.search(query, 10, None)
            slots = [hit.slot for hit in hits]
            # Every score is the score of the row's current vector.
            assert [hit.score for hit in hits] == pytest.approx(truth[slots].tolist(), rel=1e-4, abs=1e-4)
            recalls.append(len(set(slots) & set(order.tolist())) / 10)
        assert np.mean(recalls) >= 0.95, stage
        projection.index_pending()
        assert projection.pending == 0


def test_a_filter_over_rows_mostly_pending_is_answered_exactly() -> None:
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((6000, 8)).astype(np.float32)
    metadata: list[dict[str, object]] = [{"big": i < 5000} for i in range(6000)]
    projection = DatasetProjection(8, "cosine")
    projection.upsert([f"v{i}" for i in range(6000)], vectors, None, metadata)
    projection.index_pending(100)  # a bulk load just begun: 5,900 rows pending
    allowed = projection.allowed(parse_filter({"big": True}))
    assert allowed is not None and allowed.sum() == 5000
    query = rng.standard_normal(8).astype(np.float32)
    truth = true_scores("cosine", vectors[:5000], query)
    assert [hit.slot for hit in projection.default.search(query, 10, allowed)] == best(
        "cosine", truth, 10
    ).tolist()


def test_hnsw_grows_when_rows_are_indexed_not_when_they_are_stored() -> None:
    """A projection that is only scanned (a past version) holds no graph; indexing then grows it and finds."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((5000, 32)).astype(np.float32)
    projection = DatasetProjection(32, "cosine")
    with projection.lock.writing():
        projection.upsert([str(i) for i in range(5000)], vectors, None, None)
    stored = projection.memory_bytes
    with projection.lock.reading():
        assert projection.default.search(vectors[7], 1, None)[0].slot == 7
    with projection.lock.writing():
        assert projection.index_pending() == 5000
    # The graph holds a copy of each vector at least.
    assert projection.memory_bytes > stored + vectors.nbytes
    with projection.lock.reading():
        assert (
            projection.default.indexed == 5000 and projection.default.search(vectors[7], 1, None)[0].slot == 7
        )


def test_memory_counts_each_structure_and_keeps_metadata_and_words_compact() -> None:
    """`memory` names each structure; a row's metadata, parsed from JSON as events and DeepLake give it (keys not
    shared), and its words in the text index cost about a hundred bytes each, where dicts took 360 and the
    word lists 400 (bench/scale.py)."""
    n = 10_000
    vectors = np.random.default_rng(4).standard_normal((n, 8)).astype(np.float32)
    metadata = [json.loads(f'{{"bucket": {i % 1000}, "section": "s{i % 8}"}}') for i in range(n)]
    texts: list[str | None] = [" ".join(f"w{(i + j) % 50}" for j in range(10)) for i in range(n)]
    projection = DatasetProjection(8, "cosine")
    with projection.lock.writing():
        projection.upsert([str(i) for i in range(n)], vectors, texts, metadata)
    parts = projection.memory()
    assert set(parts) == {
        "vector: scan copy",
        "vector: HNSW",
        "ids",
        "texts",
        "metadata",
        "metadata columns",
        "text index",
    }
    assert parts["vector: scan copy"] >= vectors.nbytes and parts["vector: HNSW"] > vectors.nbytes
    assert parts["metadata"] / n < 120 and parts["text index"] / n < 250, parts
    assert projection.metadata(7) == metadata[7] and projection.metadata(7) is not projection.metadata(7)
    assert projection.text_search("w3", 3, None)[0].score > 0


def test_deep_size_counts_shared_objects_once_and_arrays_by_their_buffer() -> None:
    shared = "x" * 1000
    array = np.zeros(1000, dtype=np.float64)
    once = deep_size([shared])
    assert deep_size([shared, shared]) == once + 8
    assert deep_size(array) >= array.nbytes and deep_size([array, array[:10]]) < deep_size(array) + 300


def test_a_vector_fingerprint_is_the_same_in_every_process_and_changes_with_any_bit() -> None:
    # Fixed values: a change of the hash makes every saved graph useless (query_api/saved_graphs.py FORMAT).
    assert fingerprints(np.arange(6, dtype=np.float32).reshape(2, 3)).tolist() == [
        16444024716307934010,
        10866452034706884396,
    ]
    row = np.random.default_rng(0).standard_normal((1, 6)).astype(np.float32)
    bits = row.view(np.uint32)
    flipped = np.repeat(bits, 6 * 32, axis=0)
    for i in range(6 * 32):
        flipped[i, i // 32] ^= np.uint32(1 << (i % 32))
    found = fingerprints(flipped.view(np.float32)).tolist()
    assert len(set(found) | {int(fingerprints(row)[0])}) == 6 * 32 + 1
    # The same words in another order are another vector.
    assert fingerprints(row[:, ::-1])[0] != fingerprints(row)[0]
