"""Applier handlers: plain functions from a command to the domain events it caused, over the write model.

Transport-free: the Kafka entrypoint and the embedded bus both call `apply_commands` with a batch. Handlers are
idempotent, because delivery is at least once: a command handled again yields the same events (their ids
derive from the command's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from events import (
    Command,
    CommandRejected,
    CommandRejectedPayload,
    CreateDataset,
    CreateSnapshot,
    DatasetCreated,
    DatasetCreatedPayload,
    DatasetDeleted,
    DatasetDeletedPayload,
    DeleteDataset,
    DeleteSnapshot,
    DeleteVectors,
    DomainEvent,
    MetadataUpdated,
    MetadataUpdatedPayload,
    RejectionCause,
    RestoreSnapshot,
    UpdateMetadata,
    UpsertVectors,
    VectorsDeleted,
    VectorsDeletedPayload,
    VectorsUpserted,
    VectorsUpsertedPayload,
    event_for,
)
from events.analysis import analyzer_for
from events.commands import dense_default, dense_images, dense_named_vectors, image_fields
from events.filters import parse_filter
from tributary.bus import ConsistencyToken
from tributary.metrics import APPLIER_COMMIT_SECONDS
from tributary.storage import Commit, DatasetSpec, DatasetStore, DatasetWriter
from workers.rejection import Rejected
from workers.snapshots import create_snapshot, delete_snapshot, restore_snapshot

VectorWrite = UpsertVectors | DeleteVectors | UpdateMetadata
# Commands that act on a dataset as a whole: the vector writes before them in a batch are committed first.
Lifecycle = CreateDataset | DeleteDataset | CreateSnapshot | DeleteSnapshot | RestoreSnapshot


@dataclass
class Effect:
    """What a vector write did to the uncommitted dataset; its event is built once the commit gives a version."""

    command: VectorWrite
    ids: list[str]
    metadata: dict[str, Any] | None = None
    event: DomainEvent | None = None


def apply_commands(
    commands: Sequence[Command],
    store: DatasetStore,
    positions: Mapping[UUID, ConsistencyToken] | None = None,
) -> list[DomainEvent]:
    """Apply commands in order and return their events in the same order. The vector writes of one dataset
    share one DeepLake commit (with their ids in its ledger); a command on the dataset as a whole (create,
    delete, snapshot, restore) first commits the writes before it. On an unexpected error nothing uncommitted
    survives: the writers are dropped, rolling back what they changed, and the error propagates; applying the
    same commands again is safe (committed ones are in the ledgers)."""
    out: list[DomainEvent | Effect] = []
    open_writes: dict[str, tuple[DatasetWriter, list[Effect]]] = {}

    def flush(url: str) -> None:
        writer, effects = open_writes.pop(url)
        if writer.dirty:
            with APPLIER_COMMIT_SECONDS.time():
                writer.commit()
        for effect in effects:
            effect.event = _vector_event(effect, writer)

    try:
        for command in commands:
            url = store.url(command.tenant, command.dataset)
            if isinstance(command, Lifecycle):
                if url in open_writes:
                    flush(url)
                out.append(_lifecycle(command, store, (positions or {}).get(command.id)))
                continue
            if url not in open_writes:
                writer = store.writer(command.tenant, command.dataset)
                if writer is None:
                    out.append(rejection(command, f"dataset {command.dataset!r} does not exist", "not_found"))
                    continue
                open_writes[url] = (writer, [])
            writer, effects = open_writes[url]
            effect = _vector_write(command, writer)
            if isinstance(effect, Effect):
                effects.append(effect)
            out.append(effect)
        for url in list(open_writes):
            flush(url)
    except Exception:
        store.forget_all()
        raise
    return [_event_of(item) for item in out]


def _event_of(item: DomainEvent | Effect) -> DomainEvent:
    if not isinstance(item, Effect):
        return item
    if item.event is None:
        raise RuntimeError("a vector write was not flushed")
    return item.event


def _lifecycle(command: Lifecycle, store: DatasetStore, position: ConsistencyToken | None) -> DomainEvent:
    try:
        match command:
            case CreateDataset():
                return create_dataset(command, store)
            case DeleteDataset():
                return delete_dataset(command, store)
            case CreateSnapshot():
                return create_snapshot(command, store, position)
            case DeleteSnapshot():
                return delete_snapshot(command, store)
            case RestoreSnapshot():
                return restore_snapshot(command, store)
    except Rejected as exc:
        return rejection(command, str(exc), exc.cause)


def _vector_write(command: VectorWrite, writer: DatasetWriter) -> Effect | DomainEvent:
    command_id = str(command.id)
    if writer.already_applied(command_id):
        # Redelivered after its commit (or twice in one batch): announce it again (same event id), once.
        return Effect(command, ids=_requested_ids(command), metadata=_stored_metadata(command, writer))
    try:
        effect = _write(command, writer)
    except Rejected as exc:
        return rejection(command, str(exc), exc.cause)
    writer.applied(command)
    return effect


def rejection(command: Command, reason: str, cause: RejectionCause = "invalid") -> CommandRejected:
    return event_for(
        command,
        CommandRejected,
        CommandRejectedPayload(command_type=command.type, reason=reason, cause=cause),
    )


def create_dataset(command: CreateDataset, store: DatasetStore) -> DatasetCreated:
    wanted = DatasetSpec.of(command.payload)
    existing = store.spec(command.tenant, command.dataset)
    if existing is None:
        # A dataset folder without a spec is a create that crashed before its commit: start it again.
        store.delete(command.tenant, command.dataset)
        # No ledger: a create is recognised by the dataset's spec, not by its command id.
        commit = Commit([], [str(command.operation)])
        version = store.create(command.tenant, command.dataset, wanted, commit)
    elif existing == wanted:
        version = store.version(command.tenant, command.dataset)
    else:
        raise Rejected(f"dataset {command.dataset!r} already exists with another configuration", "conflict")
    dataset_id = store.dataset_id(command.tenant, command.dataset)
    return event_for(
        command,
        DatasetCreated,
        DatasetCreatedPayload(**wanted.fields(), version=version, dataset_id=dataset_id),
    )


def delete_dataset(command: DeleteDataset, store: DatasetStore) -> DatasetDeleted:
    store.delete(command.tenant, command.dataset)
    return event_for(command, DatasetDeleted, DatasetDeletedPayload())


def _write(command: VectorWrite, writer: DatasetWriter) -> Effect:
    match command:
        case UpsertVectors(payload=p):
            if p.vectors.shape[1] != writer.spec.dimensions:
                raise Rejected(
                    f"vectors have {p.vectors.shape[1]} dimensions, the dataset has {writer.spec.dimensions}"
                )
            fields = writer.spec.vectors
            for name, given in p.named_vectors.items():
                if name not in fields:
                    raise Rejected(f"the dataset has no vector field {name!r}")
                if given.vectors.shape[1] != fields[name].dimensions:
                    raise Rejected(
                        f"the field {name!r} has {fields[name].dimensions} dimensions, its vectors "
                        f"{given.vectors.shape[1]}"
                    )
            keeping = image_fields(fields)
            if stray := sorted(set(p.images) - set(keeping)):
                raise Rejected(f"the dataset has no image field {stray[0]!r}")
            named = dense_named_vectors(p.named_vectors, fields, len(p.ids))
            images = dense_images(p.images, keeping, len(p.ids))
            writer.upsert(
                p.ids, dense_default(p.vectors, p.vector_absent), p.texts, p.metadata, named, images
            )
            return Effect(command, ids=p.ids)
        case DeleteVectors(payload=p):
            if p.filter is not None:
                # Validated when the command was read; evaluated against the metadata as of this command, with
                # the dataset's analysis for $match, as a search with this filter would.
                node = parse_filter(p.filter, analyzer_for(writer.spec.text_analysis))
                return Effect(command, ids=writer.delete(writer.ids_matching(node)))
            return Effect(command, ids=writer.delete(p.ids or []))
        case UpdateMetadata(payload=p):
            stored = writer.metadata_of(p.id)
            if stored is None:
                raise Rejected(f"vector {p.id!r} does not exist", "not_found")
            metadata = {**stored, **p.metadata} if p.merge else dict(p.metadata)
            writer.set_metadata(p.id, metadata)
            return Effect(command, ids=[p.id], metadata=metadata)


def _requested_ids(command: VectorWrite) -> list[str]:
    match command:
        case UpsertVectors(payload=p):
            return p.ids
        case DeleteVectors(payload=p):
            return list(p.ids or [])
        case UpdateMetadata(payload=p):
            return [p.id]


def _stored_metadata(command: VectorWrite, writer: DatasetWriter) -> dict[str, Any] | None:
    if isinstance(command, UpdateMetadata):
        return writer.metadata_of(command.payload.id) or {}
    return None


def _vector_event(effect: Effect, writer: DatasetWriter) -> DomainEvent:
    command, version, count = effect.command, writer.version, writer.count
    match command:
        case UpsertVectors(payload=p):
            return event_for(
                command,
                VectorsUpserted,
                VectorsUpsertedPayload(
                    ids=p.ids,
                    vectors=p.vectors,
                    texts=p.texts,
                    metadata=p.metadata,
                    named_vectors=p.named_vectors,
                    vector_absent=p.vector_absent,
                    version=version,
                    vector_count=count,
                ),
            )
        case DeleteVectors():
            return event_for(
                command,
                VectorsDeleted,
                VectorsDeletedPayload(ids=effect.ids, version=version, vector_count=count),
            )
        case UpdateMetadata(payload=p):
            return event_for(
                command,
                MetadataUpdated,
                MetadataUpdatedPayload(
                    id=p.id, metadata=effect.metadata or {}, version=version, vector_count=count
                ),
            )
