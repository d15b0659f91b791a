"""Dataset lifecycle writes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from command_api.deps import WRITE_RESPONSES, WriterDep, answer_retries_first, status_of
from schemas.datasets import Accepted, CreateDatasetRequest
from tributary.deps import WritableDataset, allowed, tenant_wide
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/datasets",
    tags=["datasets"],
    dependencies=[Depends(allowed("write")), Depends(answer_retries_first)],
    route_class=JSONRoute,
    responses=WRITE_RESPONSES,
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[Depends(tenant_wide("write"))],
)
async def create_dataset(body: CreateDatasetRequest, response: Response, writer: WriterDep) -> Accepted:
    return status_of(await writer.create_dataset(body), response)


@router.delete("/{dataset}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def delete_dataset(dataset: WritableDataset, response: Response, writer: WriterDep) -> Accepted:
    return status_of(await writer.delete_dataset(dataset), response)
