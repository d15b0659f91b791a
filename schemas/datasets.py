"""Request and response models of the dataset routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from events.analysis import DEFAULT_ANALYSIS, TextAnalysis
from events.commands import DatasetDefinition, EmbedderConfig, FieldType, Metric, VectorField
from events.domain import RejectionCause
from events.names import Name
from schemas.requests import RequestModel


class CreateDatasetRequest(RequestModel, DatasetDefinition):
    name: Name = Field(description="Lowercase letters, digits, '-' and '_'; at most 63 characters")
    # A new dataset analyses texts the way that measured best (docs/benchmarks.md); the payload's own default
    # keeps the plain words of datasets created before analysis was configurable.
    text_analysis: TextAnalysis = Field(
        default=DEFAULT_ANALYSIS, description=DatasetDefinition.model_fields["text_analysis"].description
    )


class DatasetView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    dimensions: int
    metric: Metric
    metadata_schema: dict[str, FieldType]
    text_field: str | None
    embedder: EmbedderConfig | None
    # None in the catalog rows of datasets created before named vectors.
    vectors: Annotated[dict[str, VectorField], BeforeValidator(lambda v: v or {})] = Field(
        default_factory=dict, description="The named vector fields beside the default vector"
    )
    status: str
    version: str
    vector_count: int
    created_at: datetime
    updated_at: datetime


class DatasetList(BaseModel):
    datasets: list[DatasetView]


class DatasetVersionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: str = Field(description="The DeepLake version id: a read's `version` answers from it")
    time: datetime = Field(description="When it was committed (to the second)")
    operations: list[str] = Field(
        description="The operations it applied (none for DeepLake's first two commits, the dataset and its "
        "schema, and for commits made before commits named them)"
    )
    tags: list[str] = Field(description="Its tags: a snapshot's is snapshot-<id>")


class DatasetVersionList(BaseModel):
    versions: list[DatasetVersionView] = Field(description="Oldest first")


# "unconfirmed": Kafka did not confirm the publish in time (the write answered 503); the command may still arrive
# and be applied (the status then changes), and a retry with the same Idempotency-Key publishes it again.
OperationStatus = Literal["accepted", "unconfirmed", "applied", "rejected"]


class Accepted(BaseModel):
    """The answer to every write: where to follow it, and the token a `session` read waits for."""

    operation_id: str
    consistency_token: str
    status: OperationStatus
    reason: str | None = None
    rejection: RejectionCause | None = Field(
        default=None, description="Why it was rejected; the answer's status is then 404, 409 or 422 to match"
    )
    ids: list[str] | None = Field(default=None, description="For an upsert: the ids, generated where missing")


class OperationView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset: str
    command_type: str
    status: OperationStatus
    reason: str | None
    rejection: RejectionCause | None
    consistency_token: str | None
    created_at: datetime
    updated_at: datetime
