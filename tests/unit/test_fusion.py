"""Fusing vector and text rankings: Reciprocal Rank Fusion, and the weighted sums of min-max and distribution-based
normalised scores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from query_api.fusion import dbsf, min_max, rrf

rankings = st.lists(st.integers(0, 50), unique=True, max_size=20)
sides = st.lists(
    st.tuples(st.integers(0, 50), st.floats(-1e6, 1e6)), unique_by=lambda pair: pair[0], max_size=20
).map(lambda pairs: ([slot for slot, _ in pairs], [score for _, score in pairs]))


def test_rrf_sums_reciprocal_ranks() -> None:
    slots, scores = rrf([np.array([1, 2, 3]), np.array([3, 1])])
    assert slots.tolist() == [1, 3, 2]
    assert scores.tolist() == pytest.approx([1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62])


def test_rrf_constant() -> None:
    slots, scores = rrf([[4, 5], [6]], k=0)
    assert slots.tolist() == [4, 6, 5]
    assert scores.tolist() == [1.0, 1.0, 0.5]


def test_rrf_breaks_ties_by_slot() -> None:
    assert rrf([[7, 5], [5, 7]])[0].tolist() == [5, 7]
    assert rrf([[9], [2]])[0].tolist() == [2, 9]


def test_rrf_of_nothing() -> None:
    for nothing in ([], [[]], [np.array([], np.int64), []]):
        slots, scores = rrf(nothing)
        assert slots.dtype == np.int64 and scores.dtype == np.float64
        assert (slots.tolist(), scores.tolist()) == ([], [])


def test_rrf_refuses_bad_rankings() -> None:
    for bad in ([[1, 2, 1]], [[1.5, 2.0]], [[[1, 2]]]):
        with pytest.raises(ValueError):
            rrf(bad)
    with pytest.raises(ValueError):
        rrf([[1]], k=-1)


@given(rankings)
def test_rrf_of_one_ranking_keeps_its_order(ranking: list[int]) -> None:
    slots, scores = rrf([np.array(ranking, np.int64)])
    assert slots.tolist() == ranking
    assert (np.diff(scores) < 0).all()


@given(st.lists(rankings, max_size=4))
def test_rrf_scores_every_slot_by_its_ranks(lists: list[list[int]]) -> None:
    slots, scores = rrf(lists)
    expected = {
        slot: sum(1 / (60 + ranking.index(slot) + 1) for ranking in lists if slot in ranking)
        for slot in {slot for ranking in lists for slot in ranking}
    }
    assert dict(zip(slots.tolist(), scores.tolist(), strict=True)) == pytest.approx(expected)
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)


def test_weighted_normalises_each_side() -> None:
    vector = (np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]))
    text = (np.array([3, 4]), np.array([10.0, 2.0]))
    slots, scores = min_max(vector, text, alpha=0.5)
    # Normalised: vector 1 -> 1, 2 -> 0.5, 3 -> 0; text 3 -> 1, 4 -> 0.
    assert slots.tolist() == [1, 3, 2, 4]
    assert scores.tolist() == pytest.approx([0.5, 0.5, 0.25, 0.0])
    slots, scores = min_max(vector, text, alpha=0.8)
    assert slots.tolist() == [1, 2, 3, 4]
    assert scores.tolist() == pytest.approx([0.8, 0.4, 0.2, 0.0])


def test_weighted_gives_equal_scores_a_one() -> None:
    slots, scores = min_max(([5], [0.3]), ([6, 7], [2.0, 2.0]), alpha=0.25)
    assert slots.tolist() == [6, 7, 5]
    assert scores.tolist() == pytest.approx([0.75, 0.75, 0.25])


def test_weighted_with_an_empty_side() -> None:
    slots, scores = min_max(([], []), ([8, 2], [3.0, 1.0]), alpha=0.5)
    assert slots.tolist() == [8, 2]
    assert scores.tolist() == pytest.approx([0.5, 0.0])
    slots, scores = min_max(([], []), ([], []), alpha=0.5)
    assert (slots.tolist(), scores.tolist()) == ([], [])


def test_weighted_refuses_bad_input() -> None:
    good = ([1, 2], [0.5, 0.2])
    for alpha in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            min_max(good, good, alpha)
    for bad in (
        ([1, 1], [0.5, 0.2]),
        ([1, 2], [0.5]),
        ([1, 2], [0.5, float("nan")]),
        ([1, 2], [-1e308, 1e308]),
    ):
        with pytest.raises(ValueError):
            min_max(bad, good, 0.5)
        with pytest.raises(ValueError):
            min_max(good, bad, 0.5)


def normalised_order(side: tuple[list[int], list[float]], others: list[int]) -> list[int]:
    slots, scores = side
    low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
    normalised = {
        s: 1.0 if high == low else (v - low) / (high - low) for s, v in zip(slots, scores, strict=True)
    }
    return sorted({*slots, *others}, key=lambda slot: (-normalised.get(slot, 0.0), slot))


@given(sides, sides)
def test_weighted_at_the_extremes_follows_one_side(
    vector: tuple[list[int], list[float]], text: tuple[list[int], list[float]]
) -> None:
    assert min_max(vector, text, alpha=1.0)[0].tolist() == normalised_order(vector, text[0])
    assert min_max(vector, text, alpha=0.0)[0].tolist() == normalised_order(text, vector[0])


@given(sides, sides, st.floats(0, 1))
def test_weighted_scores_are_in_the_unit_interval_and_sorted(
    vector: tuple[list[int], list[float]], text: tuple[list[int], list[float]], alpha: float
) -> None:
    slots, scores = min_max(vector, text, alpha)
    assert sorted(slots.tolist()) == sorted({*vector[0], *text[0]})
    assert ((scores >= 0) & (scores <= 1 + 1e-12)).all()
    pairs = list(zip(scores.tolist(), slots.tolist(), strict=True))
    assert pairs == sorted(pairs, key=lambda pair: (-pair[0], pair[1]))


def test_rrf_weights_each_ranking() -> None:
    slots, scores = rrf([[1, 2], [2, 1]], k=0, weights=[0.75, 0.25])
    # 1: 0.75 / 1 + 0.25 / 2; 2: 0.75 / 2 + 0.25 / 1.
    assert slots.tolist() == [1, 2]
    assert scores.tolist() == pytest.approx([0.875, 0.625])
    assert rrf([[1, 2], [2, 1]], k=0, weights=[0.25, 0.75])[0].tolist() == [2, 1]
    # Weight 0 leaves a ranking's slots in, with nothing from it.
    slots, scores = rrf([[1], [2]], weights=[1.0, 0.0])
    assert slots.tolist() == [1, 2]
    assert scores.tolist() == pytest.approx([1 / 61, 0.0])
    for bad in ([1.0], [1.0, -1.0], [1.0, float("nan")], [1.0, float("inf")]):
        with pytest.raises(ValueError, match="weight"):
            rrf([[1], [2]], weights=bad)


def test_dbsf_normalises_by_mean_and_three_deviations() -> None:
    # Vector side: mean 0.5, sample standard deviation 0.4; text side: one outlier far above two close scores.
    vector = (np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]))
    text = (np.array([3, 4, 5]), np.array([30.0, 2.0, 1.0]))
    slots, scores = dbsf(vector, text, alpha=0.5)
    std = 0.4
    expected_vector = {1: (0.4 + 3 * std) / (6 * std), 2: 0.5, 3: (3 * std - 0.4) / (6 * std)}
    text_scores = np.array([30.0, 2.0, 1.0])
    low, width = text_scores.mean() - 3 * text_scores.std(ddof=1), 6 * text_scores.std(ddof=1)
    expected_text = dict(zip([3, 4, 5], ((text_scores - low) / width).tolist(), strict=True))
    expected = {
        slot: 0.5 * expected_vector.get(slot, 0.0) + 0.5 * expected_text.get(slot, 0.0)
        for slot in range(1, 6)
    }
    assert dict(zip(slots.tolist(), scores.tolist(), strict=True)) == pytest.approx(expected)
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)
    # Unlike min-max, the two close text scores stay apart from 0: the outlier does not squeeze them to the bottom.
    assert expected_text[5] > 0.3


def test_dbsf_does_not_clip_and_handles_equal_scores() -> None:
    slots, scores = dbsf(([5], [0.3]), ([6, 7], [2.0, 2.0]), alpha=0.25)
    assert slots.tolist() == [6, 7, 5]
    assert scores.tolist() == pytest.approx([0.375, 0.375, 0.125])
    many = np.array([100.0] + [1.0] * 20)
    _, scores = dbsf((np.arange(21), many), ([], []), alpha=1.0)
    # The outlier lies beyond mean + 3 deviations of its 21 scores, and stays there: clipping would tie it.
    assert scores[0] > 1 and 0 < scores[1] < 0.5
    assert dbsf(([], []), ([], []), alpha=0.5)[0].tolist() == []


@pytest.mark.parametrize("fusion", [min_max, dbsf])
def test_score_fusions_refuse_bad_input(fusion: Callable[..., object]) -> None:
    good = ([1, 2], [0.5, 0.2])
    for alpha in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            fusion(good, good, alpha)
    with pytest.raises(ValueError):
        fusion(([1, 1], [0.5, 0.2]), good, 0.5)
