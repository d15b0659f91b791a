"""Operator calls of the query API."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from query_api.deps import ReadServicesDep
from query_api.registry import rebuild
from tributary.deps import SettingsDep, TenantDep, WritableDataset, allowed
from tributary.errors import AUTHENTICATED, responses
from tributary.failures import NotFound
from tributary.storage import DatasetStore

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(allowed("write"))],
    responses=AUTHENTICATED | responses(404),
)


class Rebuilt(BaseModel):
    dataset: str
    vectors: int
    version: str
    seconds: float


@router.post("/datasets/{dataset}/rebuild", response_model=Rebuilt)
async def rebuild_projection(
    dataset: WritableDataset, services: ReadServicesDep, tenant: TenantDep, settings: SettingsDep
) -> Rebuilt:
    """Rebuild this replica's search projection of a dataset from DeepLake's latest version."""
    projections = services.projections
    started = time.perf_counter()
    store = DatasetStore(settings.resolved_storage_root)
    served = await asyncio.to_thread(rebuild, projections, store, tenant, dataset)
    if served is None:
        raise NotFound(f"dataset {dataset!r} not found")
    return Rebuilt(
        dataset=dataset,
        vectors=len(served.projection),
        version=served.projection.version,
        seconds=round(time.perf_counter() - started, 3),
    )
