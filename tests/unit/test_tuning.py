"""Tuning the HNSW search breadth to a target recall (query_api/tuning.py), on small seeded numpy data."""

from __future__ import annotations

import json
import threading
import time
from typing import get_args
from uuid import uuid4

import numpy as np
import pytest

from events.commands import CreateDataset, IndexConfig, Metric, parse_command
from events.domain import DatasetCreatedPayload
from query_api.projection import DatasetProjection
from query_api.tuning import (
    LADDER,
    SAMPLE,
    EfGate,
    Tuning,
    due,
    exact_top_k,
    recall_at_k,
    sample_queries,
    smallest_ef,
)
from tributary.storage import DatasetSpec


def clustered(count: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 100), dims)).astype(np.float32)
    return np.asarray(
        centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal((count, dims)), np.float32
    )


def test_the_smallest_breadth_that_reaches_the_target_is_kept_and_no_larger_one_is_measured() -> None:
    measured: list[int] = []

    def measure(ef: int) -> float:
        measured.append(ef)
        return min(1.0, ef / 100)

    tuning = smallest_ef(measure, 0.9)
    assert tuning.ef == 96 and tuning.recall == pytest.approx(0.96)
    assert measured == [ef for ef in LADDER if ef <= 96]


def test_an_unreachable_target_keeps_the_largest_breadth_with_the_recall_it_measured() -> None:
    tuning = smallest_ef(lambda ef: 0.5, 0.99)
    assert (tuning.ef, tuning.recall) == (LADDER[-1], 0.5)


def test_tuned_again_when_never_tuned_or_doubled_or_searches_can_stand_for_real_queries() -> None:
    assert due(Tuning(ef=100), 10, 0)
    assert not due(Tuning(ef=100), 0, 0)
    assert not due(Tuning(ef=40, rows=1000), 1999, SAMPLE - 1)
    assert due(Tuning(ef=40, rows=1000), 2000, 0)
    assert due(Tuning(ef=40, rows=1000), 1000, SAMPLE)
    assert not due(Tuning(ef=40, rows=1000, on_searches=True), 1999, SAMPLE)


def test_a_tuning_is_short_only_when_measured_below_its_target() -> None:
    assert not Tuning(ef=100, target=0.99).short  # not measured yet
    assert Tuning(ef=1024, recall=0.97, rows=10, target=0.99).short
    assert not Tuning(ef=48, recall=0.99, rows=10, target=0.99).short


def test_recall_counts_the_true_neighbours_found() -> None:
    truth = np.array([[1, 2], [3, 4]])
    assert recall_at_k(np.array([[2, 1], [3, 9]]), truth) == 0.75
    assert recall_at_k(np.array([[-1, -1], [4, 3]]), truth) == 0.5


@pytest.mark.parametrize("metric", get_args(Metric))
def test_exact_top_k_is_the_brute_force_order_among_the_allowed_rows(metric: Metric) -> None:
    rows = clustered(500, 8, seed=1)
    allowed = np.random.default_rng(2).random(500) < 0.6
    queries = clustered(20, 8, seed=3)
    found = exact_top_k(rows, allowed, queries, 5, metric)
    for query, got in zip(queries, found, strict=True):
        if metric == "l2":
            score = -np.linalg.norm(rows - query, axis=1)
        elif metric == "dot":
            score = rows @ query
        else:
            score = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
        score[~allowed] = -np.inf
        assert list(got) == list(np.argsort(-score, kind="stable")[:5])


def test_sample_queries_sit_off_the_rows_they_come_from() -> None:
    rows = clustered(300, 8, seed=4)
    allowed = np.ones(300, dtype=bool)
    queries = sample_queries(rows, allowed, "l2", seed=0)
    assert queries.shape == (SAMPLE, 8)
    nearest = np.min(np.linalg.norm(rows[None, :, :] - queries[:, None, :], axis=2), axis=1)
    assert np.all(nearest > 0)


def _projection(target: float, rows: np.ndarray, metric: Metric = "cosine") -> DatasetProjection:
    projection = DatasetProjection(
        rows.shape[1], metric, index=IndexConfig(m=8, ef_construction=32, target_recall=target)
    )
    with projection.lock.writing():
        projection.upsert([str(i) for i in range(len(rows))], rows, None, None)
        # On one thread: hnswlib builds the same graph every run (on several, the order of inserts, and so the
        # graph and its recall, vary: the held-out recall below fell to 0.918 once in about 15 runs).
        projection.index_pending(threads=1)
    return projection


def _recall_on(projection: DatasetProjection, rows: np.ndarray, queries: np.ndarray, ef: int) -> float:
    truth = exact_top_k(rows, np.ones(len(rows), dtype=bool), queries, 10, projection.default.metric)
    found = [[int(h.slot) for h in projection.default.search(q, 10, None, ef=ef)] for q in queries]
    return recall_at_k(np.array(found), truth)


@pytest.mark.parametrize("metric", get_args(Metric))
def test_the_tuned_breadth_reaches_the_target_on_queries_it_did_not_see(metric: Metric) -> None:
    # A sparse graph (M 8, ef_construction 32) on 64-d data, where a small ef misses neighbours. Dot product
    # on unit vectors, as embeddings are (a graph cannot serve inner products of free norms well: recall 0.94
    # at ef 1024 here, which the tuning then reports).
    rows = clustered(4000, 64, seed=5)
    if metric == "dot":
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    projection = _projection(0.95, rows, metric)
    tuning = projection.default.tune(seed=1)
    assert tuning.recall >= 0.95 and tuning.rows == 4000 and projection.default.tuning == tuning
    held_out = sample_queries(rows, np.ones(len(rows), dtype=bool), metric, seed=99)
    assert _recall_on(projection, rows, held_out, tuning.ef) >= 0.93
    # And it is the smallest that does: the ladder's step below measured short of the target.
    below = LADDER[LADDER.index(tuning.ef) - 1] if tuning.ef != LADDER[0] else None
    if below is not None:
        assert (
            _recall_on(projection, rows, sample_queries(rows, np.ones(4000, bool), metric, 1), below) < 0.95
        )


def test_a_higher_target_costs_a_wider_search() -> None:
    rows = clustered(4000, 64, seed=6)
    low = _projection(0.8, rows).default.tune(seed=1)
    high = _projection(0.999, rows).default.tune(seed=1)
    assert low.ef < high.ef and high.recall >= 0.999 > 0.8 <= low.recall


def test_an_exact_search_is_the_exact_top_k_whatever_the_index() -> None:
    rows = clustered(3000, 64, seed=7)
    projection = _projection(0.99, rows)
    queries = clustered(30, 64, seed=8)
    truth = exact_top_k(rows, np.ones(len(rows), dtype=bool), queries, 10, "cosine")
    for query, want in zip(queries, truth, strict=True):
        assert [h.slot for h in projection.default.search(query, 10, None, exact=True)] == list(want)
    # The narrowest HNSW search of this sparse graph does miss some.
    assert _recall_on(projection, rows, queries, ef=1) < 1.0


def test_searches_at_one_breadth_share_the_index_and_another_waits_for_them() -> None:
    settings: list[int] = []
    gate = EfGate(settings.append, 100)
    inside = threading.Event()
    release = threading.Event()
    entered_other = threading.Event()

    def hold() -> None:
        with gate.at(100):
            inside.set()
            release.wait(10)

    def other() -> None:
        with gate.at(50):
            entered_other.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    with gate.at(100):  # the same breadth: in at once, beside the holder
        pass
    waiter = threading.Thread(target=other)
    waiter.start()
    time.sleep(0.1)
    assert not entered_other.is_set() and settings == [100]
    release.set()
    assert entered_other.wait(10)
    holder.join()
    waiter.join()
    assert settings == [100, 50]


def test_once_it_has_seen_enough_searches_a_replica_tunes_on_them() -> None:
    """Queries of another kind than the rows (here: far off the data, between clusters) are what the searches
    hold; tuned on them, the breadth reaches the target on more of the same."""
    rows = clustered(4000, 64, seed=9)
    projection = _projection(0.95, rows)
    first = projection.default.tune(seed=1)
    assert not first.on_searches
    traffic = np.random.default_rng(3).standard_normal((2 * SAMPLE, 64)).astype(np.float32) * 3
    for query in traffic[:SAMPLE]:
        projection.default.search(query, 10, None)
    for query in traffic[SAMPLE:]:
        projection.default.search(query, 10, None, exact=True)  # an exact search is not an HNSW sample
    assert projection.default.recent_searches == SAMPLE and due(
        projection.default.tuning, projection.default.indexed, SAMPLE
    )
    again = projection.default.tune(seed=1)
    assert again.on_searches and again.recall >= 0.95
    assert _recall_on(projection, rows, traffic[SAMPLE:], again.ef) >= 0.93


def test_commands_events_and_specs_without_index_settings_keep_todays_graph() -> None:
    """Written before the settings existed: HNSW M 16, ef_construction 128, as every dataset had."""
    old_command = parse_command(
        json.dumps(
            {
                "id": str(uuid4()),
                "tenant": "t",
                "dataset": "d",
                "type": "CreateDataset",
                "payload": {"dimensions": 3},
            }
        )
    )
    assert isinstance(old_command, CreateDataset)
    assert (old_command.payload.index.m, old_command.payload.index.ef_construction) == (16, 128)
    assert DatasetCreatedPayload(dimensions=3, metric="cosine", version="v").index == IndexConfig()
    stored = json.loads(DatasetSpec(dimensions=3, metric="cosine").to_json())
    del stored["index"]
    assert DatasetSpec.from_json(json.dumps(stored)).index == IndexConfig()
    chosen = DatasetSpec(
        dimensions=3, metric="l2", index=IndexConfig(m=32, ef_construction=400, target_recall=0.9)
    )
    assert DatasetSpec.from_json(chosen.to_json()) == chosen
