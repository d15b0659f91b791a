"""Search cache keys: two different validated requests never share a key (a shared key serves one request's
answer to the other), and a non-finite number never gets as far as a key."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from query_api.cache import SearchCache, canonical
from schemas.search import SearchRequest

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | finite | st.text(max_size=5)
field = st.sampled_from(["a", "b", "a.b", "c"])
filters = st.recursive(
    st.dictionaries(field, scalars, max_size=3),
    lambda inner: (
        st.dictionaries(st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=2), max_size=1)
        | st.dictionaries(
            field, st.fixed_dictionaries({}, optional={"$gt": finite, "$lt": st.integers(0, 9)})
        )
    ),
    max_leaves=6,
)
requests = st.fixed_dictionaries(
    {"vector": st.lists(finite, min_size=1, max_size=3)},
    optional={
        "k": st.integers(1, 3),
        "offset": st.integers(0, 2),
        "filter": filters,
        # Any float: those that are not finite must be refused (their old key was the one of "no threshold").
        "score_threshold": st.none() | st.floats() | st.integers(-2, 2),
        "include": st.lists(st.sampled_from(["vector", "metadata", "text"]), max_size=2),
        "alpha": st.floats(0, 1),
        "exact": st.booleans(),
        "ef": st.none() | st.integers(1, 3),
    },
)


def _valid(raw: dict[str, Any]) -> SearchRequest | None:
    try:
        return SearchRequest.model_validate(raw)
    except ValidationError:
        return None


def _same(a: Any, b: Any) -> bool:
    """Equal as the search sees them: types count (1, 1.0 and True are three different filter operands)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (a == b or (math.isnan(a) and math.isnan(b))) and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def _key(request: SearchRequest) -> str:
    return SearchCache.key("t", "d", "id", "v1", 3, "100", request)


@settings(max_examples=400, deadline=None)
@given(requests, requests)
def test_different_requests_never_share_a_key(raw_a: dict[str, Any], raw_b: dict[str, Any]) -> None:
    a, b = _valid(raw_a), _valid(raw_b)
    if a is None or b is None:
        return
    if _key(a) == _key(b):
        assert _same(a.model_dump(), b.model_dump())


@settings(max_examples=200, deadline=None)
@given(requests)
def test_a_request_keeps_its_key_and_changing_any_number_changes_it(raw: dict[str, Any]) -> None:
    request = _valid(raw)
    if request is None:
        return
    assert _key(request) == _key(SearchRequest.model_validate(raw))
    nudged = request.model_copy(update={"score_threshold": 0.25 if request.score_threshold != 0.25 else 0.5})
    assert _key(nudged) != _key(request)


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_a_non_finite_threshold_is_refused(threshold: float) -> None:
    with pytest.raises(ValidationError):
        SearchRequest(vector=[1.0], score_threshold=threshold)
    # Even one built around validation never gets the key of "no threshold" (the old key wrote it as null).
    fields = {"vector": [1.0], "k": 10, "offset": 0, "include": ["metadata"], "rrf_k": 60, "alpha": 0.5}
    smuggled = SearchRequest.model_construct(**fields, score_threshold=threshold)
    plain = SearchRequest.model_construct(**fields, score_threshold=None)
    assert canonical(smuggled) != canonical(plain)


def test_the_tuned_breadth_and_the_requested_one_are_in_the_key() -> None:
    """An answer found before the dataset's `ef` was tuned is not served after; nor an exact or an `ef`
    search's answer to a plain one."""
    plain = SearchRequest(vector=[1.0])
    assert SearchCache.key("t", "d", "id", "v1", 3, "100", plain) != SearchCache.key(
        "t", "d", "id", "v1", 3, "48", plain
    )
    # Another creation of the dataset, at the same version id: DeepLake numbers each dataset's versions from 1.
    assert SearchCache.key("t", "d", "id", "v1", 3, "100", plain) != SearchCache.key(
        "t", "d", "id2", "v1", 3, "100", plain
    )
    keys = {
        _key(plain),
        _key(SearchRequest(vector=[1.0], exact=True)),
        _key(SearchRequest(vector=[1.0], ef=50)),
    }
    assert len(keys) == 3
