"""Snapshot writes: take, delete and restore a dataset's snapshots. Each builds its command and submits it;
the applier does the work in command order (workers/snapshots.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status

from command_api.deps import WRITE_RESPONSES, SubmitDep, answer_retries_first
from events import (
    CreateSnapshot,
    CreateSnapshotPayload,
    DeleteSnapshot,
    DeleteSnapshotPayload,
    RestoreSnapshot,
    RestoreSnapshotPayload,
    SnapshotId,
)
from events.names import Name
from schemas.datasets import Accepted
from schemas.snapshots import CreateSnapshotRequest
from tributary.auth.principal import authorize
from tributary.db.models import DatasetRow
from tributary.deps import (
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    TenantDep,
    WritableDataset,
    allowed,
    scope_check,
)
from tributary.json_route import JSONRoute
from tributary.settings import Settings
from tributary.snapshots import SnapshotCorrupt, find_snapshot

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
    decision = authorize(principal, "write", principal.tenant, name)
    if not decision:
        raise HTTPException(status.HTTP_403_FORBIDDEN, decision.reason)
    return name


RestoreTarget = Annotated[str, Depends(restore_target)]


async def existing_snapshot(settings: Settings, tenant: str, dataset: str, snapshot_id: str) -> None:
    """A 404 before anything is published when there is no such snapshot (of this tenant: another tenant's is
    not found either), a 409 when its manifest cannot be read."""
    try:
        found = await find_snapshot(settings, tenant, dataset, snapshot_id)
    except SnapshotCorrupt as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"snapshot {snapshot_id!r} of {dataset!r} not found")


@router.post("/{dataset}/snapshots", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def create_snapshot(
    dataset: WritableDataset,
    response: Response,
    session: SessionDep,
    tenant: TenantDep,
    submit: SubmitDep,
    body: CreateSnapshotRequest | None = None,
) -> Accepted:
    if await session.get(DatasetRow, (tenant, dataset)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    retention = body or CreateSnapshotRequest()
    payload = CreateSnapshotPayload(keep_last=retention.keep_last, max_age_days=retention.max_age_days)
    return await submit(CreateSnapshot(tenant=tenant, dataset=dataset, payload=payload), response)


@router.delete(
    "/{dataset}/snapshots/{snapshot_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted
)
async def delete_snapshot(
    dataset: WritableDataset,
    snapshot_id: SnapshotIdPath,
    response: Response,
    settings: SettingsDep,
    tenant: TenantDep,
    submit: SubmitDep,
) -> Accepted:
    await existing_snapshot(settings, tenant, dataset, snapshot_id)
    payload = DeleteSnapshotPayload(snapshot_id=snapshot_id)
    return await submit(DeleteSnapshot(tenant=tenant, dataset=dataset, payload=payload), response)


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
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    submit: SubmitDep,
) -> Accepted:
    await existing_snapshot(settings, tenant, dataset, snapshot_id)
    if target != dataset and await session.get(DatasetRow, (tenant, target)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"dataset {target!r} already exists")
    payload = RestoreSnapshotPayload(source_dataset=dataset, snapshot_id=snapshot_id)
    return await submit(RestoreSnapshot(tenant=tenant, dataset=target, payload=payload), response)
