"""Projector handlers: plain async functions that fold a domain event into the SQL projections.

Each is idempotent (upserts keyed by the event's subject), so a redelivered event changes nothing. Each event is
projected in a span that continues its trace (tributary/tracing.py).
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from events import (
    CommandRejected,
    DatasetCreated,
    DatasetDeleted,
    DomainEvent,
    MetadataUpdated,
    SnapshotRestored,
    VectorsDeleted,
    VectorsUpserted,
)
from tributary import tracing
from tributary.db.models import DatasetRow, OperationRow


async def project_event(event: DomainEvent, session: AsyncSession) -> None:
    with tracing.continuing("project", event):
        await _project(event, session)


async def _project(event: DomainEvent, session: AsyncSession) -> None:
    match event:
        case DatasetCreated() | SnapshotRestored():
            await _dataset_created(event, session)
        case DatasetDeleted():
            await session.execute(
                delete(DatasetRow).where(DatasetRow.tenant == event.tenant, DatasetRow.name == event.dataset)
            )
        case VectorsUpserted() | VectorsDeleted() | MetadataUpdated():
            await session.execute(
                update(DatasetRow)
                .where(DatasetRow.tenant == event.tenant, DatasetRow.name == event.dataset)
                .values(version=event.payload.version, vector_count=event.payload.vector_count)
            )
    await _operation_outcome(event, session)


async def _dataset_created(event: DatasetCreated | SnapshotRestored, session: AsyncSession) -> None:
    """A dataset as created, or as a restore left it (a new one, or an existing one with the snapshot's
    configuration and count)."""
    row = await session.get(DatasetRow, (event.tenant, event.dataset))
    if row is None:
        row = DatasetRow(tenant=event.tenant, name=event.dataset, vector_count=0)
        session.add(row)
    row.dimensions = event.payload.dimensions
    row.metric = event.payload.metric
    row.metadata_schema = dict(event.payload.metadata_schema)
    row.text_field = event.payload.text_field
    row.embedder = event.payload.embedder.model_dump(mode="json") if event.payload.embedder else None
    row.vectors = {name: field.model_dump(mode="json") for name, field in event.payload.vectors.items()}
    row.version = event.payload.version
    if isinstance(event, SnapshotRestored):
        row.vector_count = event.payload.vector_count
    row.status = "ready"


async def _operation_outcome(event: DomainEvent, session: AsyncSession) -> None:
    if event.causation_id is None:
        return
    op_id = str(event.operation)
    row = (await session.execute(select(OperationRow).where(OperationRow.id == op_id))).scalar_one_or_none()
    if row is None:
        # A command published straight to Kafka has no accepted row yet; its outcome still counts.
        row = OperationRow(
            id=op_id, tenant=event.tenant, dataset=event.dataset, command_type=_command_type(event)
        )
        session.add(row)
    if isinstance(event, CommandRejected):
        row.status, row.reason, row.rejection = "rejected", event.payload.reason, event.payload.cause
    elif row.status != "rejected" and (event.part is None or event.part.last):
        # The parts of a split request are applied in order (one partition), so the last one's event
        # means all are; a rejected part keeps the whole request rejected.
        row.status = "applied"


def _command_type(event: DomainEvent) -> str:
    if isinstance(event, CommandRejected):
        return event.payload.command_type
    return {
        "DatasetCreated": "CreateDataset",
        "DatasetDeleted": "DeleteDataset",
        "VectorsUpserted": "UpsertVectors",
        "VectorsDeleted": "DeleteVectors",
        "MetadataUpdated": "UpdateMetadata",
        "SnapshotCreated": "CreateSnapshot",
        "SnapshotDeleted": "DeleteSnapshot",
        "SnapshotRestored": "RestoreSnapshot",
    }[event.type]
