"""Request and response models of the dataset routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from events.analysis import DEFAULT_ANALYSIS, TextAnalysis
from events.commands import MAX_DIMENSIONS, EmbedderConfig, FieldName, FieldType, IndexConfig, Metric
from events.domain import RejectionCause
from events.names import Name
from schemas.requests import Integer, RequestModel


class CreateDatasetRequest(RequestModel):
    name: Name = Field(description="Lowercase letters, digits, '-' and '_'; at most 63 characters")
    dimensions: Integer = Field(ge=1, le=MAX_DIMENSIONS)
    metric: Metric = "cosine"
    metadata_schema: dict[FieldName, FieldType] = Field(default_factory=dict)
    text_field: FieldName | None = None
    embedder: EmbedderConfig | None = Field(
        default=None,
        description='Embeds the text of records sent without a vector, e.g. {"kind": "local", "model": '
        '"all-minilm-l6-v2"} (384 dimensions) or {"kind": "openai", "model": ..., "endpoint": <a name in TRIBUTARY_EMBEDDING_ENDPOINTS>}',
    )
    text_analysis: TextAnalysis = Field(
        default=DEFAULT_ANALYSIS,
        description="How full-text search and $match analyse texts: tokenizer, language (Snowball stemming), "
        "stop_words, unicode_folding, ascii_folding",
    )
    index: IndexConfig = Field(
        default_factory=IndexConfig,
        description="The HNSW index: m, ef_construction, and the target_recall (recall@10 against exact search) "
        "that each replica tunes its search breadth to reach",
    )


class DatasetView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    dimensions: int
    metric: Metric
    metadata_schema: dict[str, FieldType]
    text_field: str | None
    embedder: EmbedderConfig | None
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
