"""Snapshot writes: take, delete and restore a dataset's snapshots (the write service, command_api/writes.py,
builds and submits the commands; the applier does the work in command order, workers/snapshots.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from command_api.deps import WRITE_RESPONSES, WriterDep, answer_retries_first, status_of
from command_api.schedules import delete_schedule, set_schedule
from events import SnapshotId
from events.names import Name
from schemas.datasets import Accepted
from schemas.snapshots import CreateSnapshotRequest, SnapshotSchedule, SnapshotScheduleView
from tributary.auth.gate import check_dataset
from tributary.deps import CurrentPrincipal, SessionDep, TenantDep, WritableDataset, allowed, scope_check
from tributary.errors import AUTHENTICATED, responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/datasets",
    tags=["snapshots"],
    dependencies=[Depends(allowed("write")), Depends(answer_retries_first)],
    route_class=JSONRoute,
    responses=WRITE_RESPONSES,
)

SnapshotIdPath = Annotated[SnapshotId, Path(description="The operation id of the request that made it")]


@scope_check
async def restore_target(
    dataset: WritableDataset,
    principal: CurrentPrincipal,
    target: Annotated[
        Name | None, Query(description="Restore into this new dataset; without it, over the dataset itself")
    ] = None,
) -> str:
    """The dataset a restore writes: the principal may write it too."""
    name = target or dataset
    check_dataset(principal, "write", name)
    return name


RestoreTarget = Annotated[str, Depends(restore_target)]


@router.post("/{dataset}/snapshots", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def create_snapshot(
    dataset: WritableDataset, response: Response, writer: WriterDep, body: CreateSnapshotRequest | None = None
) -> Accepted:
    return status_of(await writer.create_snapshot(dataset, body or CreateSnapshotRequest()), response)


@router.delete(
    "/{dataset}/snapshots/{snapshot_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted
)
async def delete_snapshot(
    dataset: WritableDataset, snapshot_id: SnapshotIdPath, response: Response, writer: WriterDep
) -> Accepted:
    return status_of(await writer.delete_snapshot(dataset, snapshot_id), response)


@router.post(
    "/{dataset}/snapshots/{snapshot_id}/restore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
)
async def restore_snapshot(
    dataset: WritableDataset,
    snapshot_id: SnapshotIdPath,
    target: RestoreTarget,
    response: Response,
    writer: WriterDep,
) -> Accepted:
    return status_of(await writer.restore_snapshot(dataset, snapshot_id, target), response)


# A schedule is the dataset's configuration, kept in SQL (command_api/schedules.py), not a command: its
# answers are the schedule itself.
schedules = APIRouter(
    prefix="/api/v1/datasets",
    tags=["snapshots"],
    dependencies=[Depends(allowed("write"))],
    route_class=JSONRoute,
    responses=AUTHENTICATED | responses(404, 413),
)


@schedules.put("/{dataset}/snapshot-schedule", response_model=SnapshotScheduleView)
async def set_snapshot_schedule(
    dataset: WritableDataset, body: SnapshotSchedule, session: SessionDep, tenant: TenantDep
) -> SnapshotScheduleView:
    """Take the dataset's snapshots every `every_s` seconds (the first `every_s` from now), each through the
    command log as a requested one, with the retention applied after each."""
    return await set_schedule(session, tenant, dataset, body, datetime.now(UTC))


@schedules.delete("/{dataset}/snapshot-schedule", status_code=status.HTTP_204_NO_CONTENT)
async def delete_snapshot_schedule(dataset: WritableDataset, session: SessionDep, tenant: TenantDep) -> None:
    await delete_schedule(session, tenant, dataset)
