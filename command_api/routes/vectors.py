"""Vector writes: upsert, delete, metadata update. Each answers 202 with an operation id and a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from command_api.deps import WRITE_RESPONSES, WriterDep, answer_retries_first, status_of
from events.commands import VectorId
from schemas.datasets import Accepted
from schemas.vectors import DeleteVectorsRequest, MetadataPatch, UpsertVectorsRequest
from tributary.deps import WritableDataset, allowed
from tributary.errors import responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/datasets/{dataset}/vectors",
    tags=["vectors"],
    dependencies=[Depends(allowed("write")), Depends(answer_retries_first)],
    route_class=JSONRoute,
    responses=WRITE_RESPONSES,
)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=responses(503))
async def upsert_vectors(
    body: UpsertVectorsRequest, dataset: WritableDataset, response: Response, writer: WriterDep
) -> Accepted:
    return status_of(await writer.upsert_vectors(dataset, body.vectors), response)


@router.post("/delete", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def delete_vectors(
    body: DeleteVectorsRequest, dataset: WritableDataset, response: Response, writer: WriterDep
) -> Accepted:
    return status_of(await writer.delete_vectors(dataset, body), response)


@router.patch("/{vector_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def update_metadata(
    vector_id: Annotated[VectorId, Path()],
    body: MetadataPatch,
    dataset: WritableDataset,
    response: Response,
    writer: WriterDep,
) -> Accepted:
    return status_of(await writer.update_metadata(dataset, vector_id, body), response)
