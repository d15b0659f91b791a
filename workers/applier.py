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
    DomainEvent,
    event_for,
)
from tributary.storage import DatasetSpec, DatasetStore


class Rejected(Exception):
    """The command is valid but cannot be applied; the reason goes back to the client."""


def apply_command(command: Command, store: DatasetStore) -> list[DomainEvent]:
    try:
        match command:
            case CreateDataset():
                return [create_dataset(command, store)]
            case DeleteDataset():
                return [delete_dataset(command, store)]
            case _:
                raise Rejected(f"{command.type} is not applied by this version of the applier")
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
