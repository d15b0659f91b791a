"""Dataset lifecycle writes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response, status

from command_api.deps import PublisherDep
from command_api.operations import submit
from events import CreateDataset, CreateDatasetPayload, DeleteDataset
from schemas.datasets import Accepted, CreateDatasetRequest
from tributary.db.models import DatasetRow
from tributary.deps import SessionDep, SettingsDep, TenantDep

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

WaitParam = Query(default=False, description="Answer only once the write is applied (or the wait times out)")


def status_code(answer: Accepted) -> int:
    return status.HTTP_202_ACCEPTED if answer.status == "accepted" else status.HTTP_200_OK


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def create_dataset(
    body: CreateDatasetRequest,
    response: Response,
    session: SessionDep,
    publisher: PublisherDep,
    tenant: TenantDep,
    settings: SettingsDep,
    wait: bool = WaitParam,
) -> Accepted:
    if await session.get(DatasetRow, (tenant, body.name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"dataset {body.name!r} already exists")
    command = CreateDataset(
        tenant=tenant,
        dataset=body.name,
        payload=CreateDatasetPayload(
            dimensions=body.dimensions,
            metric=body.metric,
            metadata_schema=body.metadata_schema,
            text_field=body.text_field,
        ),
    )
    answer = await submit(command, session, publisher, wait=wait, timeout=settings.wait_timeout_s)
    response.status_code = status_code(answer)
    return answer


@router.delete("/{name}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def delete_dataset(
    name: str,
    response: Response,
    session: SessionDep,
    publisher: PublisherDep,
    tenant: TenantDep,
    settings: SettingsDep,
    wait: bool = WaitParam,
) -> Accepted:
    if await session.get(DatasetRow, (tenant, name)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {name!r} not found")
    command = DeleteDataset(tenant=tenant, dataset=name)
    answer = await submit(command, session, publisher, wait=wait, timeout=settings.wait_timeout_s)
    response.status_code = status_code(answer)
    return answer
