"""Snapshot reads: a dataset's snapshots, from the manifests in the backup store (tributary/snapshots.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from events import SnapshotId
from schemas.snapshots import SnapshotList, SnapshotView
from tributary.db.models import DatasetRow
from tributary.deps import ReadableDataset, SessionDep, SettingsDep, TenantDep, allowed
from tributary.errors import AUTHENTICATED, responses
from tributary.snapshots import SnapshotCorrupt, find_snapshot, find_snapshots

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
    manifests = await find_snapshots(settings, tenant, dataset)
    # A deleted dataset's snapshots are still listed (to restore it); a name with neither is not found.
    if not manifests and await session.get(DatasetRow, (tenant, dataset)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return SnapshotList(snapshots=[SnapshotView.model_validate(m) for m in manifests])


@router.get("/{dataset}/snapshots/{snapshot_id}", response_model=SnapshotView, responses=responses(404, 409))
async def get_snapshot(
    dataset: ReadableDataset,
    snapshot_id: Annotated[SnapshotId, Path()],
    settings: SettingsDep,
    tenant: TenantDep,
) -> SnapshotView:
    try:
        manifest = await find_snapshot(settings, tenant, dataset, snapshot_id)
    except SnapshotCorrupt as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if manifest is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"snapshot {snapshot_id!r} of {dataset!r} not found")
    return SnapshotView.model_validate(manifest)
