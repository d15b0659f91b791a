"""Running one search against a dataset's projection: vector, text (BM25) or hybrid (fused), with the filter
applied inside each search, then paging and the fields `include` asks for, all under one read lock (so a row
deleted meanwhile cannot appear, nor a reused slot under an old score)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from events.analysis import Analyzer
from events.filters import FilterNode, parse_filter
from query_api.fusion import dbsf, min_max, rrf
from query_api.projection import DatasetProjection, Hit
from query_api.registry import Served
from schemas.search import Fusion, Include, SearchRequest, VectorView

# Hybrid search fuses at least this many candidates from each side, so fusion sees beyond the page.
HYBRID_CANDIDATES = 100


@dataclass(frozen=True)
class SearchPlan:
    mode: Literal["vector", "text", "hybrid"]
    vector: npt.NDArray[np.float32] | None
    text: str | None
    k: int
    offset: int
    filter: FilterNode | None
    score_threshold: float | None
    fusion: Fusion
    rrf_k: int
    alpha: float
    include: tuple[Include, ...]
    ef: int | None = None
    exact: bool = False

    @classmethod
    def of(
        cls, body: SearchRequest, vector: npt.NDArray[np.float32] | None, analyzer: Analyzer
    ) -> SearchPlan:
        """The plan of a request; `analyzer` is the dataset's, for `$match`."""
        return cls(
            mode=body.mode,
            vector=vector,
            text=body.text,
            k=body.k,
            offset=body.offset,
            filter=None if body.filter is None else parse_filter(body.filter, analyzer),
            score_threshold=body.score_threshold,
            fusion=body.fusion,
            rrf_k=body.rrf_k,
            alpha=body.alpha,
            include=tuple(body.include),
            ef=body.ef,
            exact=body.exact,
        )


def run_search(served: Served, plan: SearchPlan) -> tuple[list[VectorView], bool]:
    """The page of results and whether there may be more."""
    projection = served.projection
    wanted = plan.offset + plan.k + 1
    with projection.lock.reading():
        allowed = projection.allowed(plan.filter)
        if plan.mode == "vector":
            assert plan.vector is not None
            found = projection.search(plan.vector, wanted, allowed, plan.ef, plan.exact)
            hits = _within_threshold(found, plan, projection)
        elif plan.mode == "text":
            hits = projection.text_search(plan.text or "", wanted, allowed)
        else:
            hits = _hybrid(projection, plan, allowed, max(wanted, HYBRID_CANDIDATES))
        page = [(hit.slot, hit.score) for hit in hits[plan.offset : plan.offset + plan.k]]
        return views(projection, page, plan.include), len(hits) > plan.offset + plan.k


def _within_threshold(hits: list[Hit], plan: SearchPlan, projection: DatasetProjection) -> list[Hit]:
    if plan.score_threshold is None:
        return hits
    if projection.metric == "l2":
        return [hit for hit in hits if hit.score <= plan.score_threshold]
    return [hit for hit in hits if hit.score >= plan.score_threshold]


def _hybrid(
    projection: DatasetProjection, plan: SearchPlan, allowed: npt.NDArray[np.bool_] | None, candidates: int
) -> list[Hit]:
    assert plan.vector is not None
    by_vector = projection.search(plan.vector, candidates, allowed, plan.ef, plan.exact)
    by_text = projection.text_search(plan.text or "", candidates, allowed)
    vector_side = (
        np.array([h.slot for h in by_vector], dtype=np.int64),
        _ranked_scores(by_vector, projection),
    )
    text_side = (np.array([h.slot for h in by_text], dtype=np.int64), np.array([h.score for h in by_text]))
    if plan.fusion == "rrf":
        slots, scores = rrf(
            [vector_side[0], text_side[0]], k=plan.rrf_k, weights=[plan.alpha, 1 - plan.alpha]
        )
    elif plan.fusion == "dbsf":
        slots, scores = dbsf(vector_side, text_side, plan.alpha)
    else:
        slots, scores = min_max(vector_side, text_side, plan.alpha)
    return [Hit(int(slot), float(score)) for slot, score in zip(slots, scores, strict=True)]


def _ranked_scores(hits: list[Hit], projection: DatasetProjection) -> npt.NDArray[np.float64]:
    # Fusion wants higher-is-better on both sides; an l2 distance is turned around.
    scores = np.array([h.score for h in hits], dtype=np.float64)
    return -scores if projection.metric == "l2" else scores


def views(
    projection: DatasetProjection, slots: Sequence[tuple[int, float | None]], include: Sequence[Include]
) -> list[VectorView]:
    """The rows (slot, score) as answered (callers hold the projection's read lock)."""
    return [
        VectorView(
            id=projection.id_of(slot),
            score=score,
            vector=projection.vector(slot).tolist() if "vector" in include else None,
            metadata=projection.metadata(slot) if "metadata" in include else None,
            text=projection.text(slot) if "text" in include else None,
        )
        for slot, score in slots
    ]
