"""Snapshot schedules: a dataset's snapshots taken every so often, each submitted through the command log as a
requested one is (`Writer.create_snapshot`), so the applier takes it in command order.

The processes that publish commands run them (the command API and embedded mode), not the appliers: the
applier role has no command publisher, and a schedule is only a timer in front of one. Each round looks for the
schedules that are due and moves each one's `next_at` on in a statement that first checks it is unchanged: of
several command-API replicas, exactly one takes each due snapshot. A snapshot that could not be submitted (the
broker away) puts `next_at` back, so the next round tries it again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from command_api.writes import Writer
from schemas.snapshots import CreateSnapshotRequest, SnapshotSchedule, SnapshotScheduleView
from tributary.bus import CommandPublisher
from tributary.db.models import DatasetRow, SnapshotScheduleRow
from tributary.embedding import Embedders
from tributary.failures import NotFound
from tributary.settings import Settings

log = logging.getLogger(__name__)


async def set_schedule(
    session: AsyncSession, tenant: str, dataset: str, schedule: SnapshotSchedule, now: datetime
) -> SnapshotScheduleView:
    """Schedule (or reschedule) the dataset's snapshots: the first is due `every_s` from now."""
    if await session.get(DatasetRow, (tenant, dataset)) is None:
        raise NotFound(f"dataset {dataset!r} not found")
    row = await session.get(SnapshotScheduleRow, (tenant, dataset))
    if row is None:
        row = SnapshotScheduleRow(tenant=tenant, dataset=dataset)
        session.add(row)
    row.every_s, row.keep_last, row.max_age_days = schedule.every_s, schedule.keep_last, schedule.max_age_days
    row.next_at = now + timedelta(seconds=schedule.every_s)
    await session.commit()
    return SnapshotScheduleView.model_validate(row)


async def delete_schedule(session: AsyncSession, tenant: str, dataset: str) -> None:
    deleted = await session.execute(
        delete(SnapshotScheduleRow).where(
            SnapshotScheduleRow.tenant == tenant, SnapshotScheduleRow.dataset == dataset
        )
    )
    await session.commit()
    if not getattr(deleted, "rowcount", 0):
        raise NotFound(f"dataset {dataset!r} has no snapshot schedule")


async def take_due_snapshots(
    sessions: async_sessionmaker[AsyncSession],
    publisher: CommandPublisher,
    embedders: Embedders,
    settings: Settings,
    now: datetime,
) -> int:
    """Submit the snapshot of every schedule due at `now` that this process wins; returns how many."""
    async with sessions() as session:
        due = list(
            (await session.execute(select(SnapshotScheduleRow).where(SnapshotScheduleRow.next_at <= now)))
            .scalars()
            .all()
        )
    taken = 0
    for schedule in due:
        async with sessions() as session:
            if await _take(session, publisher, embedders, settings, schedule, now):
                taken += 1
    return taken


async def _take(
    session: AsyncSession,
    publisher: CommandPublisher,
    embedders: Embedders,
    settings: Settings,
    schedule: SnapshotScheduleRow,
    now: datetime,
) -> bool:
    tenant, dataset, was = schedule.tenant, schedule.dataset, schedule.next_at
    # The next time after now on the schedule's grid: rounds missed while no replica ran are not made up.
    periods = math.floor((now - was).total_seconds() / schedule.every_s) + 1
    following = was + timedelta(seconds=periods * schedule.every_s)
    if not await _moved(session, tenant, dataset, was, following):
        return False  # another replica took it
    writer = Writer(tenant, session, publisher, embedders, settings, None, wait=False)
    retention = CreateSnapshotRequest(keep_last=schedule.keep_last, max_age_days=schedule.max_age_days)
    try:
        accepted = await writer.create_snapshot(dataset, retention)
    except NotFound:
        # The dataset was deleted: so is its schedule.
        await delete_schedule(session, tenant, dataset)
        log.info("dropped the snapshot schedule of %s/%s: the dataset no longer exists", tenant, dataset)
        return False
    except Exception:
        await session.rollback()
        await _moved(session, tenant, dataset, following, was)
        raise
    log.info("scheduled snapshot %s of %s/%s submitted", accepted.operation_id, tenant, dataset)
    return True


async def _moved(session: AsyncSession, tenant: str, dataset: str, was: datetime, to: datetime) -> bool:
    moved = await session.execute(
        update(SnapshotScheduleRow)
        .where(
            SnapshotScheduleRow.tenant == tenant,
            SnapshotScheduleRow.dataset == dataset,
            SnapshotScheduleRow.next_at == was,
        )
        .values(next_at=to)
    )
    await session.commit()
    return bool(getattr(moved, "rowcount", 0))


async def run_schedules(
    sessions: async_sessionmaker[AsyncSession],
    publisher: CommandPublisher,
    embedders: Embedders,
    settings: Settings,
) -> None:
    while True:
        try:
            await take_due_snapshots(sessions, publisher, embedders, settings, datetime.now(UTC))
        except Exception:
            # The next round tries again: a due snapshot stays due.
            log.warning("taking the scheduled snapshots failed", exc_info=True)
        await asyncio.sleep(settings.snapshot_schedule_poll_s)
