"""Reads of a dataset's vectors: search, get by id, scroll and count, from the replica's projection
(query_api/reading.py)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Response

from query_api.deps import ReaderDep, ServedDep
from query_api.reading import ServedRead
from schemas.search import (
    CountRequest,
    CountResponse,
    GetVectorsRequest,
    ScrollRequest,
    ScrollResponse,
    SearchBatchRequest,
    SearchBatchResponse,
    SearchRequest,
    SearchResponse,
    VectorsResponse,
    VectorView,
)
from tributary.deps import allowed
from tributary.errors import AUTHENTICATED, responses
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
async def search(body: SearchRequest, read: ServedDep, reader: ReaderDep) -> Response:
    page = await reader.search_page(read, body)
    return _answer(read, page[1:-1])


@router.post(
    "/search/batch",
    response_model=SearchBatchResponse,
    response_model_exclude_none=True,
    responses=responses(503),
)
async def search_batch(body: SearchBatchRequest, read: ServedDep, reader: ReaderDep) -> Response:
    """Many searches at one consistency wait; each is cached as if asked alone."""
    pages = [await reader.search_page(read, search) for search in body.searches]
    return _answer(read, b'"answers":[' + b",".join(pages) + b"]")


def _answer(read: ServedRead, fields: bytes) -> Response:
    """The read's own state (consistency, version, reflects) joined with cached JSON `fields`."""
    state = json.dumps(read.state, separators=(",", ":")).encode()
    return Response(state[:-1] + b"," + fields + b"}", media_type="application/json")


@router.get("/vectors/{vector_id}", response_model=VectorView, response_model_exclude_none=True)
async def get_vector(vector_id: str, read: ServedDep, reader: ReaderDep) -> VectorView:
    return await reader.get_one(read, vector_id)


@router.post("/vectors/get", response_model=VectorsResponse, response_model_exclude_none=True)
async def get_vectors(body: GetVectorsRequest, read: ServedDep, reader: ReaderDep) -> VectorsResponse:
    return VectorsResponse(results=await reader.get(read, body), **read.state)


@router.post("/scroll", response_model=ScrollResponse, response_model_exclude_none=True)
async def scroll(body: ScrollRequest, read: ServedDep, reader: ReaderDep) -> ScrollResponse:
    found, next_cursor = await reader.scroll(read, body)
    return ScrollResponse(results=found, next_cursor=next_cursor, **read.state)


@router.post("/count", response_model=CountResponse)
async def count(body: CountRequest, read: ServedDep, reader: ReaderDep) -> CountResponse:
    return CountResponse(count=await reader.count(read, body), **read.state)
