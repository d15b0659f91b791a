"""Snapshot reads (query_api/snapshots.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from events import SnapshotId
from query_api import snapshots
from schemas.snapshots import SnapshotList, SnapshotScheduleView, SnapshotView
from tributary.deps import ReadableDataset, SessionDep, SettingsDep, TenantDep, allowed
from tributary.errors import AUTHENTICATED, responses

router = APIRouter(
    prefix="/api/v1/datasets",
    tags=["snapshots"],
    dependencies=[Depends(allowed("read"))],
    responses=AUTHENTICATED,
)


@router.get("/{dataset}/snapshots", response_model=SnapshotList, responses=responses(404))
async def list_snapshots(
    dataset: ReadableDataset, settings: SettingsDep, session: SessionDep, tenant: TenantDep
) -> SnapshotList:
    return SnapshotList(snapshots=await snapshots.list_snapshots(settings, session, tenant, dataset))


@router.get("/{dataset}/snapshot-schedule", response_model=SnapshotScheduleView, responses=responses(404))
async def get_snapshot_schedule(
    dataset: ReadableDataset, session: SessionDep, tenant: TenantDep
) -> SnapshotScheduleView:
    return await snapshots.get_schedule(session, tenant, dataset)


@router.get("/{dataset}/snapshots/{snapshot_id}", response_model=SnapshotView, responses=responses(404, 409))
async def get_snapshot(
    dataset: ReadableDataset,
    snapshot_id: Annotated[SnapshotId, Path()],
    settings: SettingsDep,
    tenant: TenantDep,
) -> SnapshotView:
    return await snapshots.get_snapshot(settings, tenant, dataset, snapshot_id)
