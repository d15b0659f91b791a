"""Reads of a dataset's vectors: search, get by id, scroll and count, from the replica's projection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response, status

from events.filters import FilterNode, parse_filter
from query_api.cache import SearchCache
from query_api.deps import SearchCacheDep, ServedDep, ServedRead
from query_api.projection import DatasetProjection
from query_api.registry import Served
from query_api.searching import SearchPlan, run_search, views
from schemas.search import (
    CountRequest,
    CountResponse,
    GetVectorsRequest,
    Include,
    ScrollRequest,
    ScrollResponse,
    SearchBatchRequest,
    SearchBatchResponse,
    SearchPage,
    SearchRequest,
    SearchResponse,
    VectorsResponse,
    VectorView,
)
from tributary.deps import EmbeddersDep, ReadableDataset, TenantDep, allowed
from tributary.embedding import Embedders, EmbeddingFailed
from tributary.errors import AUTHENTICATED, invalid, responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/datasets/{dataset}",
    tags=["search"],
    route_class=JSONRoute,
    dependencies=[Depends(allowed("read"))],
    # 404: no such dataset; 504: the replica did not reach the read's consistency in time.
    responses=AUTHENTICATED | responses(404, 413, 504),
)


@router.post(
    "/search", response_model=SearchResponse, response_model_exclude_none=True, responses=responses(503)
)
async def search(
    dataset: ReadableDataset,
    body: SearchRequest,
    read: ServedDep,
    embedders: EmbeddersDep,
    cache: SearchCacheDep,
    tenant: TenantDep,
) -> Response:
    page = await _cached_page(dataset, body, read.served, embedders, cache, tenant)
    return _answer(read, page[1:-1])


@router.post(
    "/search/batch",
    response_model=SearchBatchResponse,
    response_model_exclude_none=True,
    responses=responses(503),
)
async def search_batch(
    dataset: ReadableDataset,
    body: SearchBatchRequest,
    read: ServedDep,
    embedders: EmbeddersDep,
    cache: SearchCacheDep,
    tenant: TenantDep,
) -> Response:
    """Many searches at one consistency wait; each is cached as if asked alone."""
    pages = [
        await _cached_page(dataset, search, read.served, embedders, cache, tenant) for search in body.searches
    ]
    return _answer(read, b'"answers":[' + b",".join(pages) + b"]")


def _answer(read: ServedRead, fields: bytes) -> Response:
    """The read's own state (consistency, version, reflects) joined with cached JSON `fields`: the cached part
    never carries another read's state."""
    state = json.dumps(_state(read), separators=(",", ":")).encode()
    return Response(state[:-1] + b"," + fields + b"}", media_type="application/json")


async def _cached_page(
    dataset: str, body: SearchRequest, served: Served, embedders: Embedders, cache: SearchCache, tenant: str
) -> bytes:
    projection = served.projection
    key = SearchCache.key(tenant, dataset, projection.version, projection.applied_at_version, body)
    page = await cache.get(key)
    if page is None:
        page = await _search_page(body, served, embedders)
        await cache.put(key, page)
    return page


async def _search_page(body: SearchRequest, served: Served, embedders: Embedders) -> bytes:
    vector = None if body.vector is None else np.asarray(body.vector, dtype=np.float32)
    if vector is None and body.mode != "text":
        if served.spec.embedder is None:
            raise invalid(("body", "vector"), "this dataset has no embedder: give a query vector")
        try:
            embedder = embedders.get(served.spec.embedder, served.spec.dimensions)
            vector = (await embedder.embed([body.text or ""]))[0]
        except EmbeddingFailed as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if vector is not None and len(vector) != served.spec.dimensions:
        raise invalid(
            ("body", "vector"),
            f"the query vector has {len(vector)} dimensions, the dataset has {served.spec.dimensions}",
        )
    results, more = await asyncio.to_thread(
        run_search, served, SearchPlan.of(body, vector, served.projection.analyzer)
    )
    page = SearchPage(results=results, next_offset=body.offset + len(results) if more else None)
    return page.model_dump_json(exclude_none=True).encode()


@router.get("/vectors/{vector_id}", response_model=VectorView, response_model_exclude_none=True)
async def get_vector(vector_id: str, read: ServedDep) -> VectorView:
    views = await asyncio.to_thread(_by_ids, read, [vector_id], ["vector", "metadata", "text"])
    if not views:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"vector {vector_id!r} not found")
    return views[0]


@router.post("/vectors/get", response_model=VectorsResponse, response_model_exclude_none=True)
async def get_vectors(body: GetVectorsRequest, read: ServedDep) -> VectorsResponse:
    views = await asyncio.to_thread(_by_ids, read, body.ids, body.include)
    return VectorsResponse(results=views, **_state(read))


@router.post("/scroll", response_model=ScrollResponse, response_model_exclude_none=True)
async def scroll(body: ScrollRequest, read: ServedDep) -> ScrollResponse:
    start = _cursor(body.cursor)

    def page() -> tuple[list[VectorView], str | None]:
        projection = read.served.projection
        with projection.lock.reading():
            slots = projection.live_slots(projection.allowed(_filter(body.filter, projection)))
            after = slots[slots >= start]
            chosen = [int(s) for s in after[: body.limit]]
            more = len(after) > body.limit
            found = views(projection, [(slot, None) for slot in chosen], body.include)
            return found, str(chosen[-1] + 1) if more else None

    found, next_cursor = await asyncio.to_thread(page)
    return ScrollResponse(results=found, next_cursor=next_cursor, **_state(read))


@router.post("/count", response_model=CountResponse)
async def count(body: CountRequest, read: ServedDep) -> CountResponse:
    def counted() -> int:
        projection = read.served.projection
        with projection.lock.reading():
            return len(projection.live_slots(projection.allowed(_filter(body.filter, projection))))

    return CountResponse(count=await asyncio.to_thread(counted), **_state(read))


def _state(read: ServedRead) -> dict[str, object]:
    return {
        "consistency": read.consistency,
        "version": read.served.projection.version,
        "reflects": read.reflects,
    }


def _filter(raw: dict[str, Any] | None, projection: DatasetProjection) -> FilterNode | None:
    return None if raw is None else parse_filter(raw, projection.analyzer)


def _cursor(raw: str | None) -> int:
    # ScrollRequest's pattern made it a short run of ASCII digits ("²" passes str.isdigit, not int()).
    return 0 if raw is None else int(raw)


def _by_ids(read: ServedRead, ids: Sequence[str], include: Sequence[Include]) -> list[VectorView]:
    projection = read.served.projection
    with projection.lock.reading():
        slots = [slot for vector_id in ids if (slot := projection.slot(vector_id)) is not None]
        return views(projection, [(slot, None) for slot in slots], include)
