"""Operator calls of the query API."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from events.commands import DEFAULT_VECTOR_FIELD
from query_api.deps import ReadServicesDep
from query_api.projection import DatasetProjection
from query_api.reading import no_vector_field
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


class IndexState(BaseModel):
    """This replica's HNSW index of one vector field of a dataset: its graph, and the search breadth tuned to the
    target recall."""

    m: int
    ef_construction: int
    target_recall: float
    ef: int = Field(description="The search breadth used when a search gives none")
    measured_recall: float | None = Field(
        description="recall@10 against exact search measured at `ef` (none before the first tuning)"
    )
    tuned_rows: int = Field(
        description="Indexed vectors when `ef` was tuned (it is tuned again at twice as many)"
    )
    tuned_on: Literal["searches", "rows"] | None = Field(
        description="What the recall was measured on: this replica's recent searches, or queries made from rows "
        "before it had seen enough (none before the first tuning)"
    )
    indexed: int
    pending: int = Field(description="Vectors not in HNSW yet (searched by exact scan meanwhile)")

    @classmethod
    def of(cls, projection: DatasetProjection, field: str = DEFAULT_VECTOR_FIELD) -> IndexState:
        space = projection.spaces.get(field)
        if space is None:
            raise no_vector_field(field, projection.spaces, ("query",))
        tuning, config = space.tuning, space.config
        return cls(
            m=config.m,
            ef_construction=config.ef_construction,
            target_recall=config.target_recall,
            ef=tuning.ef,
            measured_recall=tuning.recall if tuning.rows else None,
            tuned_rows=tuning.rows,
            tuned_on=None if not tuning.rows else "searches" if tuning.on_searches else "rows",
            indexed=space.indexed,
            pending=space.pending,
        )


class Rebuilt(BaseModel):
    dataset: str
    vectors: int
    version: str
    seconds: float
    index: IndexState


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
        index=IndexState.of(served.projection),
    )


@router.get("/datasets/{dataset}/index", response_model=IndexState)
async def index_state(
    dataset: WritableDataset,
    services: ReadServicesDep,
    tenant: TenantDep,
    field: Annotated[str, Query(description="The vector field: the default one, or a named field")] = (
        DEFAULT_VECTOR_FIELD
    ),
) -> IndexState:
    """This replica's HNSW index of a dataset's vector field: the tuned search breadth and the recall it measured."""
    served = services.projections.get(tenant, dataset)
    if served is None:
        raise NotFound(f"dataset {dataset!r} not found")
    return IndexState.of(served.projection, field)
