"""The snapshot read service: a dataset's snapshots, from the manifests in the backup store
(tributary/snapshots.py), whatever the transport."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.snapshots import SnapshotScheduleView, SnapshotView
from tributary.db.models import DatasetRow, SnapshotScheduleRow
from tributary.failures import NotFound
from tributary.settings import Settings
from tributary.snapshots import existing_snapshot, find_snapshots


async def list_snapshots(
    settings: Settings, session: AsyncSession, tenant: str, dataset: str
) -> list[SnapshotView]:
    """Oldest first. A deleted dataset's snapshots are still listed (to restore it); a name with neither a
    dataset nor snapshots is not found."""
    manifests = await find_snapshots(settings, tenant, dataset)
    if not manifests and await session.get(DatasetRow, (tenant, dataset)) is None:
        raise NotFound(f"dataset {dataset!r} not found")
    return [SnapshotView.model_validate(m) for m in manifests]


async def get_schedule(session: AsyncSession, tenant: str, dataset: str) -> SnapshotScheduleView:
    row = await session.get(SnapshotScheduleRow, (tenant, dataset))
    if row is None:
        raise NotFound(f"dataset {dataset!r} has no snapshot schedule")
    return SnapshotScheduleView.model_validate(row)


async def get_snapshot(settings: Settings, tenant: str, dataset: str, snapshot_id: str) -> SnapshotView:
    return SnapshotView.model_validate(await existing_snapshot(settings, tenant, dataset, snapshot_id))
