"""Hybrid search: fusing a vector ranking and a text ranking into one.

Every fusion returns every slot found in any input, with its fused score (float64), best first, ties broken by the
smaller slot; the caller keeps the first k. A slot missing from an input gets nothing from it. Each side has a
weight: `alpha` for the vector side and 1 - alpha for the text side in the two-sided fusions, or one weight per
ranking in `rrf`, `min_max_of` and `dbsf_of`, which fuse any number of sides (a search over several vector fields
and text).

- `rrf`, Reciprocal Rank Fusion (Cormack, Clarke and Buettcher, SIGIR 2009): a slot scores the sum, over the
  rankings that hold it, of weight / (k + rank), with ranks from 1. It uses ranks only, so the two sides' scores
  need no calibration; k = 60 is the paper's, a larger k flattens the advantage of the first ranks.
- `min_max`, Weaviate's relative score fusion: alpha * vector + (1 - alpha) * text, each side's scores min-max
  normalised to [0, 1] over that side's own candidates (its best gets 1 and its worst 0; when they are equal, as
  for a single candidate, all get 1).
- `dbsf`, Qdrant's distribution-based score fusion: the same weighted sum, each side normalised by its own
  distribution instead of its extremes: mean - 3 sample standard deviations maps to 0 and mean + 3 to 1, so one
  outlier does not squeeze the others together. Not clipped, as in Qdrant: clipping ties the outliers at 1, which
  cost up to 0.09 MRR on bench/relevance.py's man pages. Equal scores (a single candidate) get 0.5.

The score-based fusions want "higher is better" on both sides: similarities, or BM25 scores; a distance must be
negated first. Their normalisation depends on the candidates, so fetch the same number from each side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Slots = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]


def rrf(
    rankings: Sequence[npt.ArrayLike], k: int = 60, weights: Sequence[float] | None = None
) -> tuple[Slots, Scores]:
    """Reciprocal Rank Fusion of rankings of slots, each best first and without repeats; weights default to 1."""
    if k < 0:
        raise ValueError("the RRF constant k must be >= 0")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings) or not all(0 <= w < math.inf for w in weights):
        raise ValueError("RRF takes one finite, non-negative weight per ranking")
    sides = [_slots(ranking, "a ranking") for ranking in rankings]
    contributions = [
        weight / (k + np.arange(1, len(slots) + 1, dtype=np.float64))
        for slots, weight in zip(sides, weights, strict=True)
    ]
    return _fuse(sides, contributions)


Side = tuple[npt.ArrayLike, npt.ArrayLike]


def min_max(vector: Side, text: Side, alpha: float) -> tuple[Slots, Scores]:
    """Relative score fusion of (slots, scores) sides: alpha * vector + (1 - alpha) * text, min-max normalised."""
    return min_max_of([vector, text], _two_sided(alpha))


def dbsf(vector: Side, text: Side, alpha: float) -> tuple[Slots, Scores]:
    """Distribution-based score fusion: as `min_max`, each side normalised by its mean +- 3 standard deviations."""
    return dbsf_of([vector, text], _two_sided(alpha))


def min_max_of(sides: Sequence[Side], weights: Sequence[float]) -> tuple[Slots, Scores]:
    """Relative score fusion of any number of (slots, scores) sides: the weighted sum of each side's min-max
    normalised scores (a search over several vector fields and text)."""
    return _normalised_fusion(sides, weights, _min_max)


def dbsf_of(sides: Sequence[Side], weights: Sequence[float]) -> tuple[Slots, Scores]:
    """Distribution-based score fusion of any number of sides, as `min_max_of`."""
    return _normalised_fusion(sides, weights, _three_sigma)


def _two_sided(alpha: float) -> list[float]:
    if not 0 <= alpha <= 1:
        raise ValueError("alpha, the weight of the vector side, must be in [0, 1]")
    return [alpha, 1 - alpha]


def _normalised_fusion(
    sides: Sequence[Side], weights: Sequence[float], normalise: Callable[[Scores], Scores]
) -> tuple[Slots, Scores]:
    if len(weights) != len(sides) or not all(0 <= w < math.inf for w in weights):
        raise ValueError("score fusion takes one finite, non-negative weight per side")
    checked = [_side(side, name) for side, name in zip(sides, _side_names(len(sides)), strict=True)]
    return _fuse(
        [slots for slots, _ in checked],
        [weight * normalise(scores) for (_, scores), weight in zip(checked, weights, strict=True)],
    )


def _side_names(count: int) -> list[str]:
    # The two-sided fusions' messages name their sides as they always did.
    return ["the vector side", "the text side"] if count == 2 else [f"side {i}" for i in range(count)]


def _slots(raw: npt.ArrayLike, name: str) -> Slots:
    slots = np.asarray(raw)
    if slots.size == 0:
        return np.empty(0, np.int64)
    if slots.ndim != 1 or not np.issubdtype(slots.dtype, np.integer):
        raise ValueError(f"{name} must be a one-dimensional array of integer slots")
    if len(np.unique(slots)) != len(slots):
        raise ValueError(f"{name} repeats a slot")
    return slots.astype(np.int64, copy=False)


def _side(side: tuple[npt.ArrayLike, npt.ArrayLike], name: str) -> tuple[Slots, Scores]:
    slots = _slots(side[0], name)
    scores = np.asarray(side[1], dtype=np.float64)
    if scores.shape != slots.shape:
        raise ValueError(f"{name} needs one score per slot")
    # Finite, with a finite range, so the normalisation neither overflows nor divides by infinity.
    if len(scores) and not math.isfinite(float(scores.max()) - float(scores.min())):
        raise ValueError(f"{name} needs finite scores with a finite range")
    return slots, scores


def _min_max(scores: Scores) -> Scores:
    if len(scores) == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high == low:
        return np.ones_like(scores)
    normalised: Scores = (scores - low) / (high - low)
    return normalised


def _three_sigma(scores: Scores) -> Scores:
    if len(scores) < 2 or (spread := 3 * float(scores.std(ddof=1))) == 0:
        return np.full_like(scores, 0.5)
    normalised: Scores = (scores - (float(scores.mean()) - spread)) / (2 * spread)
    return normalised


def _fuse(sides: Sequence[Slots], contributions: Sequence[Scores]) -> tuple[Slots, Scores]:
    slots = np.concatenate([np.empty(0, np.int64), *sides])
    unique, inverse = np.unique(slots, return_inverse=True)
    weights = np.concatenate([np.empty(0), *contributions])
    # bincount answers int64 zeros for no input at all.
    fused = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.float64, copy=False)
    order = np.lexsort((unique, -fused))
    return unique[order], fused[order]
