"""Catalog reads: datasets and operation status, from the SQL projections."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import select

from schemas.datasets import DatasetList, DatasetView, OperationView
from tributary.auth.principal import authorize
from tributary.db.models import DatasetRow, OperationRow
from tributary.deps import CurrentPrincipal, SessionDep, TenantDep, allowed
from tributary.errors import AUTHENTICATED, responses

router = APIRouter(
    prefix="/api/v1", tags=["catalog"], dependencies=[Depends(allowed("read"))], responses=AUTHENTICATED
)


@router.get("/datasets", response_model=DatasetList)
async def list_datasets(session: SessionDep, principal: CurrentPrincipal) -> DatasetList:
    rows = await session.scalars(
        select(DatasetRow).where(DatasetRow.tenant == principal.tenant).order_by(DatasetRow.name)
    )
    # A credential limited to some datasets lists only those.
    visible = [row for row in rows if authorize(principal, "read", principal.tenant, row.name)]
    return DatasetList(datasets=[DatasetView.model_validate(row) for row in visible])


@router.get("/datasets/{name}", response_model=DatasetView, responses=responses(404))
async def get_dataset(name: str, session: SessionDep, tenant: TenantDep) -> DatasetView:
    row = await session.get(DatasetRow, (tenant, name))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {name!r} not found")
    return DatasetView.model_validate(row)


@router.get("/operations/{operation_id}", response_model=OperationView, responses=responses(404))
async def get_operation(operation_id: str, session: SessionDep, tenant: TenantDep) -> OperationView:
    row = await session.get(OperationRow, operation_id)
    if row is None or row.tenant != tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"operation {operation_id!r} not found")
    return OperationView.model_validate(row)
