"""Snapshot writes: take, delete and restore a dataset's snapshots (the write service, command_api/writes.py,
builds and submits the commands; the applier does the work in command order, workers/snapshots.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from command_api.deps import WRITE_RESPONSES, WriterDep, answer_retries_first, status_of
from events import SnapshotId
from events.names import Name
from schemas.datasets import Accepted
from schemas.snapshots import CreateSnapshotRequest
from tributary.auth.gate import check_dataset
from tributary.deps import CurrentPrincipal, WritableDataset, allowed, scope_check
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
