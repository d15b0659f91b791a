"""Catalog reads: datasets and operation status, from the SQL projections (query_api/catalog.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from query_api import catalog
from query_api.deps import ReaderDep
from schemas.datasets import DatasetList, DatasetVersionList, DatasetView, OperationView
from tributary.db.models import OperationRow
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
    return DatasetList(datasets=await catalog.list_datasets(session, principal))


@router.get("/datasets/{dataset}", response_model=DatasetView, responses=responses(404))
async def get_dataset(dataset: ReadableDataset, session: SessionDep, tenant: TenantDep) -> DatasetView:
    return await catalog.get_dataset(session, tenant, dataset)


@router.get("/datasets/{dataset}/versions", response_model=DatasetVersionList, responses=responses(404))
async def list_versions(dataset: ReadableDataset, reader: ReaderDep) -> DatasetVersionList:
    """The dataset's history (DeepLake commits), oldest first: a read's `version` may name any of them."""
    return DatasetVersionList(versions=await reader.versions(dataset))


@scope_check
async def readable_operation(
    operation_id: str, session: SessionDep, principal: CurrentPrincipal
) -> OperationRow:
    """The operation's own dataset decides who may read it (query_api/catalog.py)."""
    return await catalog.readable_operation(session, principal, operation_id)


@router.get("/operations/{operation_id}", response_model=OperationView, responses=responses(404))
async def get_operation(row: Annotated[OperationRow, Depends(readable_operation)]) -> OperationView:
    return OperationView.model_validate(row)
