"""Applier handlers: plain functions from a command to the domain events it caused, over the write model.

Transport-free: the Kafka entrypoint and the embedded bus both call `apply_command`. Handlers are
idempotent, because delivery is at least once: a command handled again yields the same events (their ids
derive from the command's).
"""

from __future__ import annotations

from events import (
    Command,
    CommandRejected,
    CommandRejectedPayload,
    CreateDataset,
    DatasetCreated,
    DatasetCreatedPayload,
    DatasetDeleted,
    DatasetDeletedPayload,
    DeleteDataset,
    DeleteVectors,
    DomainEvent,
    MetadataUpdated,
    MetadataUpdatedPayload,
    UpdateMetadata,
    UpsertVectors,
    VectorsDeleted,
    VectorsDeletedPayload,
    VectorsUpserted,
    VectorsUpsertedPayload,
    event_for,
)
from tributary.storage import DatasetSpec, DatasetStore, DatasetWriter

VectorWrite = UpsertVectors | DeleteVectors | UpdateMetadata


class Rejected(Exception):
    """The command is valid but cannot be applied; the reason goes back to the client."""


def apply_command(command: Command, store: DatasetStore) -> list[DomainEvent]:
    try:
        match command:
            case CreateDataset():
                return [create_dataset(command, store)]
            case DeleteDataset():
                return [delete_dataset(command, store)]
            case UpsertVectors() | DeleteVectors() | UpdateMetadata():
                return [apply_vector_write(command, store)]
    except Rejected as exc:
        return [rejection(command, str(exc))]


def rejection(command: Command, reason: str) -> CommandRejected:
    return event_for(
        command, CommandRejected, CommandRejectedPayload(command_type=command.type, reason=reason)
    )


def create_dataset(command: CreateDataset, store: DatasetStore) -> DatasetCreated:
    wanted = DatasetSpec(
        dimensions=command.payload.dimensions,
        metric=command.payload.metric,
        metadata_schema=dict(command.payload.metadata_schema),
        text_field=command.payload.text_field,
    )
    existing = store.spec(command.tenant, command.dataset)
    if existing is None:
        # A dataset folder without a spec is a create that crashed before its commit: start it again.
        store.delete(command.tenant, command.dataset)
        version = store.create(command.tenant, command.dataset, wanted, message=f"CreateDataset {command.id}")
    elif existing == wanted:
        version = store.version(command.tenant, command.dataset)
    else:
        raise Rejected(f"dataset {command.dataset!r} already exists with another configuration")
    return event_for(
        command,
        DatasetCreated,
        DatasetCreatedPayload(
            dimensions=wanted.dimensions,
            metric=wanted.metric,
            metadata_schema=wanted.metadata_schema,
            text_field=wanted.text_field,
            version=version,
        ),
    )


def delete_dataset(command: DeleteDataset, store: DatasetStore) -> DatasetDeleted:
    store.delete(command.tenant, command.dataset)
    return event_for(command, DatasetDeleted, DatasetDeletedPayload())


def apply_vector_write(command: VectorWrite, store: DatasetStore) -> DomainEvent:
    writer = store.writer(command.tenant, command.dataset)
    if writer is None:
        raise Rejected(f"dataset {command.dataset!r} does not exist")
    command_id = str(command.id)
    if writer.already_applied(command_id):
        # Redelivered after its commit: the data is there; announce it again (same event id) and move on.
        return _vector_event(command, writer, changed=None)
    try:
        changed = _write(command, writer)
        writer.commit(command_id)
    except Exception:
        # Uncommitted changes must not leak into the next command's commit: reopen at the last commit.
        store.forget(command.tenant, command.dataset)
        raise
    return _vector_event(command, writer, changed)


def _write(command: VectorWrite, writer: DatasetWriter) -> list[str]:
    match command:
        case UpsertVectors(payload=p):
            if p.vectors.shape[1] != writer.spec.dimensions:
                raise Rejected(
                    f"vectors have {p.vectors.shape[1]} dimensions, the dataset has {writer.spec.dimensions}"
                )
            writer.upsert(p.ids, p.vectors, p.texts, p.metadata)
            return p.ids
        case DeleteVectors(payload=p):
            if p.ids is None:
                raise Rejected("delete by filter is not supported yet; delete by ids")
            return writer.delete(p.ids)
        case UpdateMetadata(payload=p):
            stored = writer.metadata_of(p.id)
            if stored is None:
                raise Rejected(f"vector {p.id!r} does not exist")
            writer.set_metadata(p.id, {**stored, **p.metadata} if p.merge else dict(p.metadata))
            return [p.id]


def _vector_event(command: VectorWrite, writer: DatasetWriter, changed: list[str] | None) -> DomainEvent:
    version, count = writer.version, writer.count
    match command:
        case UpsertVectors(payload=p):
            return event_for(
                command,
                VectorsUpserted,
                VectorsUpsertedPayload(ids=p.ids, metadata=p.metadata, version=version, vector_count=count),
            )
        case DeleteVectors(payload=p):
            deleted = changed if changed is not None else list(p.ids or [])
            return event_for(
                command,
                VectorsDeleted,
                VectorsDeletedPayload(ids=deleted, version=version, vector_count=count),
            )
        case UpdateMetadata(payload=p):
            return event_for(
                command,
                MetadataUpdated,
                MetadataUpdatedPayload(
                    id=p.id, metadata=writer.metadata_of(p.id) or {}, version=version, vector_count=count
                ),
            )
