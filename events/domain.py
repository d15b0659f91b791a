"""Domain events: past-tense facts on the event topic, published after the write model committed them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from events.analysis import PLAIN_WORDS, TextAnalysis
from events.commands import (
    EmbedderConfig,
    FieldName,
    FieldType,
    FieldVectors,
    IndexConfig,
    Metric,
    SnapshotId,
    VectorField,
    VectorFieldName,
    VectorId,
)
from events.envelope import Envelope
from events.names import Name
from events.vectors import Float32Matrix


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetCreatedPayload(Payload):
    dimensions: int
    metric: Metric
    metadata_schema: dict[FieldName, FieldType] = Field(default_factory=dict)
    text_field: FieldName | None = None
    embedder: EmbedderConfig | None = None
    text_analysis: TextAnalysis = PLAIN_WORDS
    index: IndexConfig = Field(default_factory=IndexConfig)
    vectors: dict[VectorFieldName, VectorField] = Field(default_factory=dict)
    version: str = Field(description="DeepLake version id after the commit")
    dataset_id: str = Field(
        default="",
        description="DeepLake's id of the dataset, unique to this creation of it: versions are numbered from 1 in "
        "each dataset, so a dataset deleted and created again under its name goes through the same version ids, "
        "and only this tells them apart (empty in events from before it was sent)",
    )


class DatasetDeletedPayload(Payload):
    pass


class VectorsUpsertedPayload(Payload):
    """The upserted records in full, so that projections and stream consumers need not read DeepLake."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    ids: list[VectorId]
    vectors: Float32Matrix
    texts: list[str | None] | None = None
    metadata: list[dict[str, Any]] | None = None
    named_vectors: dict[VectorFieldName, FieldVectors] = Field(default_factory=dict)
    vector_absent: list[int] = Field(
        default_factory=list, description="Rows of records without the default vector (zeros in `vectors`)"
    )
    version: str
    vector_count: int = Field(description="Vectors in the dataset after the commit")


class VectorsDeletedPayload(Payload):
    ids: list[VectorId]
    version: str
    vector_count: int = Field(description="Vectors in the dataset after the commit")


class MetadataUpdatedPayload(Payload):
    id: VectorId
    metadata: dict[str, Any] = Field(description="The metadata as stored after the update")
    version: str
    vector_count: int = Field(description="Vectors in the dataset after the commit")


class SnapshotCreatedPayload(Payload):
    snapshot_id: SnapshotId
    version: str = Field(description="The DeepLake version the snapshot holds (tagged snapshot-<id>)")
    vector_count: int
    created_at: datetime
    pruned: list[SnapshotId] = Field(
        default_factory=list, description="Snapshots of the dataset the retention deleted after this one"
    )


class SnapshotDeletedPayload(Payload):
    snapshot_id: SnapshotId


class SnapshotRestoredPayload(DatasetCreatedPayload):
    """The dataset now holds the snapshot's state (its configuration, as a create would give it) at a new
    `version`: a projection of it is built again from DeepLake at that version, and later events apply on top."""

    source_dataset: Name
    snapshot_id: SnapshotId
    snapshot_version: str = Field(description="The version of the source dataset the snapshot holds")
    vector_count: int


# Why a command was rejected: what it names does not exist, it conflicts with what does, or it is invalid.
RejectionCause = Literal["not_found", "conflict", "invalid"]


class CommandRejectedPayload(Payload):
    command_type: str
    reason: str
    cause: RejectionCause = Field(
        default="invalid", description="not_found, conflict or invalid (the HTTP API answers 404, 409 or 422)"
    )


class DatasetCreated(Envelope):
    type: Literal["DatasetCreated"] = "DatasetCreated"
    payload: DatasetCreatedPayload


class DatasetDeleted(Envelope):
    type: Literal["DatasetDeleted"] = "DatasetDeleted"
    payload: DatasetDeletedPayload = Field(default_factory=DatasetDeletedPayload)


class VectorsUpserted(Envelope):
    type: Literal["VectorsUpserted"] = "VectorsUpserted"
    payload: VectorsUpsertedPayload


class VectorsDeleted(Envelope):
    type: Literal["VectorsDeleted"] = "VectorsDeleted"
    payload: VectorsDeletedPayload


class MetadataUpdated(Envelope):
    type: Literal["MetadataUpdated"] = "MetadataUpdated"
    payload: MetadataUpdatedPayload


class SnapshotCreated(Envelope):
    type: Literal["SnapshotCreated"] = "SnapshotCreated"
    payload: SnapshotCreatedPayload


class SnapshotDeleted(Envelope):
    type: Literal["SnapshotDeleted"] = "SnapshotDeleted"
    payload: SnapshotDeletedPayload


class SnapshotRestored(Envelope):
    type: Literal["SnapshotRestored"] = "SnapshotRestored"
    payload: SnapshotRestoredPayload


class CommandRejected(Envelope):
    type: Literal["CommandRejected"] = "CommandRejected"
    payload: CommandRejectedPayload


DomainEvent = Annotated[
    DatasetCreated
    | DatasetDeleted
    | VectorsUpserted
    | VectorsDeleted
    | MetadataUpdated
    | SnapshotCreated
    | SnapshotDeleted
    | SnapshotRestored
    | CommandRejected,
    Field(discriminator="type"),
]

_events: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)

E = TypeVar("E", bound=Envelope)


def parse_event(raw: bytes | str) -> DomainEvent:
    return _events.validate_json(raw)


def event_for(command: Envelope, event_type: type[E], payload: BaseModel) -> E:
    """The event a command caused. Its id is derived from the command's, so a redelivered command that is
    handled again yields the same event id, and consumers deduplicating on ids see it once."""
    type_name = event_type.model_fields["type"].default
    return event_type.model_validate(
        {
            "id": _derived_id(command.id, type_name),
            "tenant": command.tenant,
            "dataset": command.dataset,
            "idempotency_key": command.idempotency_key,
            "causation_id": command.id,
            "trace": command.trace,
            "operation_id": command.operation,
            "part": command.part,
            "payload": payload,
        }
    )


def _derived_id(command_id: UUID, event_type: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"tributary:{command_id}:{event_type}")
