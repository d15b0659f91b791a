"""Catalog reads: datasets and operation status, from the SQL projections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import select

from schemas.datasets import DatasetList, DatasetView, OperationView
from tributary.auth.principal import authorize
from tributary.db.models import DatasetRow, OperationRow
from tributary.deps import (
    CurrentPrincipal,
    ReadableDataset,
    SessionDep,
    TenantDep,
    allowed,
    scope_check,
    tenant_wide,
)
from tributary.errors import AUTHENTICATED, responses

router = APIRouter(
    prefix="/api/v1", tags=["catalog"], dependencies=[Depends(allowed("read"))], responses=AUTHENTICATED
)


@router.get("/datasets", response_model=DatasetList, dependencies=[Depends(tenant_wide("read"))])
async def list_datasets(session: SessionDep, principal: CurrentPrincipal) -> DatasetList:
    rows = await session.scalars(
        select(DatasetRow).where(DatasetRow.tenant == principal.tenant).order_by(DatasetRow.name)
    )
    # A credential limited to some datasets lists only those.
    visible = [row for row in rows if authorize(principal, "read", principal.tenant, row.name)]
    return DatasetList(datasets=[DatasetView.model_validate(row) for row in visible])


@router.get("/datasets/{dataset}", response_model=DatasetView, responses=responses(404))
async def get_dataset(dataset: ReadableDataset, session: SessionDep, tenant: TenantDep) -> DatasetView:
    row = await session.get(DatasetRow, (tenant, dataset))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return DatasetView.model_validate(row)


@scope_check
async def readable_operation(
    operation_id: str, session: SessionDep, principal: CurrentPrincipal
) -> OperationRow:
    """The operation, when it is of the principal's tenant and of a dataset the principal may read; as with
    datasets, any other is not found."""
    row = await session.get(OperationRow, operation_id)
    if row is None or not authorize(principal, "read", row.tenant, row.dataset):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"operation {operation_id!r} not found")
    return row


@router.get("/operations/{operation_id}", response_model=OperationView, responses=responses(404))
async def get_operation(row: Annotated[OperationRow, Depends(readable_operation)]) -> OperationView:
    return OperationView.model_validate(row)
