"""Running one search against a dataset's projection: vector (of one vector field), text (BM25), hybrid (a vector
field and BM25, fused) or fused (any inputs of `queries`: vector fields and BM25), with the filter applied inside
each search, then paging and the fields `include` asks for, all under one read lock (so a row
deleted meanwhile cannot appear, nor a reused slot under an old score)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from events.analysis import Analyzer
from events.commands import DEFAULT_VECTOR_FIELD
from events.filters import FilterNode, parse_filter
from query_api.fusion import dbsf_of, min_max_of, rrf
from query_api.projection import DatasetProjection, Hit, VectorSpace
from query_api.registry import Served
from schemas.search import Fusion, Include, SearchRequest, VectorView

# Hybrid search fuses at least this many candidates from each side, so fusion sees beyond the page.
HYBRID_CANDIDATES = 100


@dataclass(frozen=True)
class PlannedInput:
    """One input of a fused search: a vector field's search with `vector`, or BM25 with `text` (field None)."""

    field: str | None
    vector: npt.NDArray[np.float32] | None
    text: str | None
    weight: float


@dataclass(frozen=True)
class SearchPlan:
    mode: Literal["vector", "text", "hybrid", "fused"]
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
    field: str = DEFAULT_VECTOR_FIELD
    inputs: tuple[PlannedInput, ...] = ()

    @classmethod
    def of(
        cls,
        body: SearchRequest,
        vector: npt.NDArray[np.float32] | None,
        analyzer: Analyzer,
        inputs: Sequence[PlannedInput] = (),
    ) -> SearchPlan:
        """The plan of a request; `analyzer` is the dataset's, for `$match`; `inputs`: those of `queries`, with
        their vectors."""
        return cls(
            mode="fused" if body.queries is not None else body.mode,
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
            field=body.field,
            inputs=tuple(inputs),
        )


def run_search(served: Served, plan: SearchPlan) -> tuple[list[VectorView], bool]:
    """The page of results and whether there may be more."""
    projection = served.projection
    wanted = plan.offset + plan.k + 1
    with projection.lock.reading():
        allowed = projection.allowed(plan.filter)
        if plan.mode == "vector":
            assert plan.vector is not None
            space = projection.spaces[plan.field]
            found = space.search(plan.vector, wanted, allowed, plan.ef, plan.exact)
            hits = _within_threshold(found, plan, space)
        elif plan.mode == "text":
            hits = projection.text_search(plan.text or "", wanted, allowed)
        elif plan.mode == "hybrid":
            inputs = (
                PlannedInput(plan.field, plan.vector, None, plan.alpha),
                PlannedInput(None, None, plan.text, 1 - plan.alpha),
            )
            hits = _fused(projection, plan, inputs, allowed, max(wanted, HYBRID_CANDIDATES))
        else:
            hits = _fused(projection, plan, plan.inputs, allowed, max(wanted, HYBRID_CANDIDATES))
        page = [(hit.slot, hit.score) for hit in hits[plan.offset : plan.offset + plan.k]]
        return views(projection, page, plan.include), len(hits) > plan.offset + plan.k


def _within_threshold(hits: list[Hit], plan: SearchPlan, space: VectorSpace) -> list[Hit]:
    if plan.score_threshold is None:
        return hits
    if space.metric == "l2":
        return [hit for hit in hits if hit.score <= plan.score_threshold]
    return [hit for hit in hits if hit.score >= plan.score_threshold]


def _fused(
    projection: DatasetProjection,
    plan: SearchPlan,
    inputs: Sequence[PlannedInput],
    allowed: npt.NDArray[np.bool_] | None,
    candidates: int,
) -> list[Hit]:
    """Each input's `candidates` best under the filter, fused into one ranking (`plan.fusion`, each input
    weighted). A row an input does not find (a record without that vector field, a text without the words)
    gets nothing from it, and may still come first through the others."""
    sides: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
    for planned in inputs:
        if planned.field is None:
            found = projection.text_search(planned.text or "", candidates, allowed)
            scores = np.array([h.score for h in found], dtype=np.float64)
        else:
            assert planned.vector is not None
            space = projection.spaces[planned.field]
            found = space.search(planned.vector, candidates, allowed, plan.ef, plan.exact)
            # Fusion wants higher-is-better on every side; an l2 distance is turned around.
            scores = np.array([h.score for h in found], dtype=np.float64)
            scores = -scores if space.metric == "l2" else scores
        sides.append((np.array([h.slot for h in found], dtype=np.int64), scores))
    weights = [planned.weight for planned in inputs]
    if plan.fusion == "rrf":
        slots, fused = rrf([slots for slots, _ in sides], k=plan.rrf_k, weights=weights)
    elif plan.fusion == "dbsf":
        slots, fused = dbsf_of(sides, weights)
    else:
        slots, fused = min_max_of(sides, weights)
    return [Hit(int(slot), float(score)) for slot, score in zip(slots, fused, strict=True)]


def views(
    projection: DatasetProjection, slots: Sequence[tuple[int, float | None]], include: Sequence[Include]
) -> list[VectorView]:
    """The rows (slot, score) as answered (callers hold the projection's read lock)."""
    return [
        VectorView(
            id=projection.id_of(slot),
            score=score,
            vector=None if "vector" not in include or (v := projection.vector(slot)) is None else v.tolist(),
            vectors={name: v.tolist() for name, v in projection.named_vectors(slot).items()}
            if "vectors" in include
            else None,
            metadata=projection.metadata(slot) if "metadata" in include else None,
            text=projection.text(slot) if "text" in include else None,
        )
        for slot, score in slots
    ]
