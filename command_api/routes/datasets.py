"""Dataset lifecycle writes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from command_api.deps import WRITE_RESPONSES, SubmitDep, answer_retries_first
from command_api.validation import check_embedder
from events import CreateDataset, CreateDatasetPayload, DeleteDataset
from schemas.datasets import Accepted, CreateDatasetRequest
from tributary.db.models import DatasetRow
from tributary.deps import EmbeddersDep, SessionDep, TenantDep, WritableDataset, allowed, tenant_wide
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
async def create_dataset(
    body: CreateDatasetRequest,
    response: Response,
    session: SessionDep,
    tenant: TenantDep,
    submit: SubmitDep,
    embedders: EmbeddersDep,
) -> Accepted:
    check_embedder(body.embedder, body.dimensions, embedders)
    if await session.get(DatasetRow, (tenant, body.name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"dataset {body.name!r} already exists")
    payload = CreateDatasetPayload(
        dimensions=body.dimensions,
        metric=body.metric,
        metadata_schema=body.metadata_schema,
        text_field=body.text_field,
        embedder=body.embedder,
        text_analysis=body.text_analysis,
    )
    return await submit(CreateDataset(tenant=tenant, dataset=body.name, payload=payload), response)


@router.delete("/{dataset}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def delete_dataset(
    dataset: WritableDataset, response: Response, session: SessionDep, tenant: TenantDep, submit: SubmitDep
) -> Accepted:
    if await session.get(DatasetRow, (tenant, dataset)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return await submit(DeleteDataset(tenant=tenant, dataset=dataset), response)
