"""The routes of a filtered search (query_api/filtered.py): the rule that picks one, each route's answer against an
exact scan of the allowed rows (no rows allowed, all, fewer than k, deleted rows, a filter whose rows lie away
from the query), and no Python call per candidate on any route."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import numpy as np
import pytest

from events.filters import parse_filter
from query_api.filtered import OVERSAMPLE, ROWS_PER_CANDIDATE, Route, oversampled, route
from query_api.projection import DatasetProjection

ROWS, DIMS, K = 2000, 8, 10
ROUTES: list[Route | None] = ["exact", "post_filter", None]


def test_candidates_are_enough_for_k_to_pass_and_never_more_than_the_index() -> None:
    assert oversampled(10, 1000, 10_000) == OVERSAMPLE * 10 * 10
    assert oversampled(10, 10_000, 10_000) == OVERSAMPLE * 10
    assert oversampled(10, 1, 10_000) == 10_000
    assert oversampled(10, 0, 10_000) == 10_000


def test_the_route_is_the_cheaper_one() -> None:
    assert route(allowed=0, candidates=10_000, indexed=10_000) == "exact"
    # As many candidates as rows in the index: HNSW would visit them all anyway.
    assert route(allowed=9_000, candidates=10_000, indexed=10_000) == "exact"
    candidates = 400
    scanned = int(ROWS_PER_CANDIDATE * candidates)
    assert route(allowed=scanned, candidates=candidates, indexed=100_000) == "exact"
    assert route(allowed=scanned + 1, candidates=candidates, indexed=100_000) == "post_filter"


@pytest.mark.parametrize("indexed", [10**5, 10**6, 10**7])
def test_a_share_of_a_larger_dataset_is_post_filtered_and_a_number_of_rows_scanned(indexed: int) -> None:
    # The crossover in allowed rows grows as sqrt(k x indexed): 10% of the rows post-filtered, 1,000 rows scanned.
    def chosen(allowed: int) -> Route:
        return route(allowed, oversampled(K, allowed, indexed), indexed)

    assert chosen(indexed // 10) == "post_filter"
    assert chosen(1000) == "exact"


def _projection(rows: np.ndarray, metadata: list[dict[str, Any]]) -> DatasetProjection:
    projection = DatasetProjection(rows.shape[1], "cosine")
    projection.upsert([str(i) for i in range(len(rows))], rows, None, metadata)
    projection.index_pending()
    return projection


def _exact_answer(projection: DatasetProjection, query: np.ndarray, raw: dict[str, Any]) -> list[int]:
    return [
        h.slot for h in projection.default.search(query, K, projection.allowed(parse_filter(raw)), exact=True)
    ]


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((ROWS, DIMS)).astype(np.float32)


@pytest.mark.parametrize("by", ROUTES)
@pytest.mark.parametrize(
    "raw",
    [
        {"n": {"$lt": 0}},  # no rows
        {"n": {"$gte": 0}},  # all rows
        {"n": {"$lt": 4}},  # fewer than k
        {"n": {"$lt": 20}},  # 1%
        {"n": {"$lt": 200}},  # 10%
        {"n": {"$lt": 1000}},  # 50%
    ],
)
def test_each_route_answers_as_an_exact_scan_of_the_allowed_rows(
    rows: np.ndarray, raw: dict[str, Any], by: Route | None
) -> None:
    projection = _projection(rows, [{"n": i} for i in range(ROWS)])
    allowed = projection.allowed(parse_filter(raw))
    for query in np.random.default_rng(1).standard_normal((20, DIMS)).astype(np.float32):
        found = [h.slot for h in projection.default.search(query, K, allowed, by=by)]
        assert found == _exact_answer(projection, query, raw)


@pytest.mark.parametrize("by", ROUTES)
def test_deleted_and_pending_rows_on_each_route(rows: np.ndarray, by: Route | None) -> None:
    projection = _projection(rows, [{"n": i} for i in range(ROWS)])
    query = rows[5] + 0.01
    raw = {"n": {"$lt": 1000}}
    nearest = _exact_answer(projection, query, raw)
    # The nearest allowed rows go; a new allowed row right by the query comes, not yet indexed.
    projection.delete([str(slot) for slot in nearest[:5]])
    projection.upsert(["new"], (query + 0.001)[None, :], None, [{"n": 1}])
    assert projection.pending == 1
    found = [
        h.slot for h in projection.default.search(query, K, projection.allowed(parse_filter(raw)), by=by)
    ]
    assert found == _exact_answer(projection, query, raw)
    assert projection.slot("new") == found[0] and not set(nearest[:5]) & set(found[1:])


@pytest.mark.parametrize("by", ROUTES)
def test_a_filter_whose_rows_lie_away_from_the_query_is_answered_exactly(by: Route | None) -> None:
    # Two far clusters; the filter keeps the one away from the query, so the unfiltered neighbours all fail it.
    rng = np.random.default_rng(2)
    centre = np.zeros(DIMS, dtype=np.float32)
    centre[0] = 10
    rows = np.concatenate(
        [centre + rng.standard_normal((ROWS // 2, DIMS)), -centre + rng.standard_normal((ROWS // 2, DIMS))]
    ).astype(np.float32)
    projection = _projection(rows, [{"side": "near" if i < ROWS // 2 else "far"} for i in range(ROWS)])
    raw = {"side": "far"}
    query = rows[0]
    found = [
        h.slot for h in projection.default.search(query, K, projection.allowed(parse_filter(raw)), by=by)
    ]
    assert found == _exact_answer(projection, query, raw)
    assert all(slot >= ROWS // 2 for slot in found)


def _python_calls(search: Callable[[], object]) -> int:
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        search()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("by", ROUTES)
def test_a_filtered_search_makes_no_python_call_per_candidate(by: Route | None) -> None:
    # 30% of 20,000 rows: 6,000 allowed, more than the older code scanned exactly, so it searched HNSW with a
    # Python callable as its filter and called it for each candidate visited (hundreds here).
    rows = np.random.default_rng(3).standard_normal((20_000, DIMS)).astype(np.float32)
    projection = _projection(rows, [{"n": i % 10} for i in range(len(rows))])
    allowed = projection.allowed(parse_filter({"n": {"$lt": 3}}))
    query = rows[0]
    unfiltered = _python_calls(lambda: projection.default.search(query, K, None))
    filtered = _python_calls(lambda: projection.default.search(query, K, allowed, by=by))
    assert filtered <= unfiltered + 50, (filtered, unfiltered)
