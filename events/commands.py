"""Commands: imperative messages on the command topic, keyed by tenant/dataset."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from events.analysis import PLAIN_WORDS, TextAnalysis
from events.envelope import Envelope
from events.filters import FilterDict
from events.names import Name
from events.vectors import Float32Matrix

Metric = Literal["cosine", "dot", "l2"]
FieldType = Literal["string", "integer", "number", "boolean", "string_list"]
VectorId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")]


def _integral_float(value: Any) -> Any:
    # JSON has one number type: 10.0 is the integer 10 (JSON Schema agrees), "10" is not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer a strict request model (schemas.requests.RequestModel) also takes as 10.0.
Integer = Annotated[int, BeforeValidator(_integral_float)]

MAX_DIMENSIONS = 65_536
MAX_METADATA_DEPTH = 32
NOT_FINITE = "metadata values must be finite numbers (no NaN or infinity)"


# Values that need no walk: most metadata is one level of these (and floats, checked on the way), and walking
# each record's costs a 1,000-record write about 18 ms of the command API's and the applier's CPU.
_FLAT = frozenset((str, int, bool, type(None)))


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata is stored as JSON text: NaN and infinity have no JSON form, and deep nesting is refused."""
    for item in value.values():
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                raise ValueError(NOT_FINITE)
        elif kind not in _FLAT:
            return _nested_plain_json(value)
    return value


def _nested_plain_json(value: dict[str, Any]) -> dict[str, Any]:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(NOT_FINITE)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_plain_json)]

LocalModel = Literal["all-minilm-l6-v2"]
# The local models a dataset may name, with the width of their embeddings.
LOCAL_MODEL_DIMENSIONS: dict[str, int] = {"all-minilm-l6-v2": 384}


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class LocalEmbedderConfig(Payload):
    """A model that runs inside the Tributary process (the `embed-local` extra)."""

    kind: Literal["local"] = "local"
    model: LocalModel = "all-minilm-l6-v2"

    @property
    def dimensions(self) -> int | None:
        return LOCAL_MODEL_DIMENSIONS[self.model]


class OpenAIEmbedderConfig(Payload):
    """An OpenAI-compatible `POST {url}/embeddings` endpoint that the operator configured under `endpoint`
    (the server setting TRIBUTARY_EMBEDDING_ENDPOINTS holds its URL and key). A dataset never carries a URL or a
    key of its own."""

    kind: Literal["openai"] = "openai"
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    endpoint: Name | None = Field(
        default=None, description="The name of an embedding endpoint the operator configured"
    )
    base_url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None,
        description="Datasets created before named endpoints kept a URL here. It is still read: such a dataset "
        "embeds only through the configured endpoint of the same URL. New datasets name an `endpoint`",
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DIMENSIONS,
        description="Sent as the request's `dimensions` (models that can shorten their embeddings); "
        "without it the model's own width must equal the dataset's",
    )

    @model_validator(mode="after")
    def _names_an_endpoint(self) -> OpenAIEmbedderConfig:
        if (self.endpoint is None) == (self.base_url is None):
            raise ValueError("give the `endpoint` the operator configured")
        return self


EmbedderConfig = Annotated[LocalEmbedderConfig | OpenAIEmbedderConfig, Field(discriminator="kind")]

_embedder_configs: TypeAdapter[EmbedderConfig] = TypeAdapter(EmbedderConfig)


def parse_embedder_config(data: object) -> LocalEmbedderConfig | OpenAIEmbedderConfig:
    """An embedder configuration from its JSON object form (as stored with a dataset)."""
    return _embedder_configs.validate_python(data)


def embedder_mismatch(embedder: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int) -> str | None:
    """Why `embedder` cannot fill a dataset of `dimensions`, or None when it can (as far as is known before
    the first embedding: an endpoint without `dimensions` is checked on each answer)."""
    if embedder.dimensions is None or embedder.dimensions == dimensions:
        return None
    return (
        f"the {embedder.kind} embedder {embedder.model!r} makes {embedder.dimensions}-dimensional "
        f"embeddings, the dataset has {dimensions} dimensions"
    )


# Today's HNSW graph (hnswlib's M and ef_construction) and target recall@10: the index of a dataset created
# before they were configurable, and of one created without them.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 128
DEFAULT_TARGET_RECALL = 0.99


class IndexConfig(Payload):
    """A dataset's HNSW index: its graph, built alike by every replica, and the recall@10 against exact search
    that each replica tunes its search breadth (`ef`) to reach (query_api/tuning.py)."""

    m: int = Field(default=DEFAULT_M, ge=4, le=64, description="HNSW links per node (hnswlib's M)")
    ef_construction: int = Field(
        default=DEFAULT_EF_CONSTRUCTION, ge=16, le=1024, description="HNSW breadth while inserting"
    )
    target_recall: float = Field(
        default=DEFAULT_TARGET_RECALL,
        ge=0.5,
        le=1.0,
        description="recall@10 against exact search that the tuned search breadth (ef) must reach",
    )


class DatasetDefinition(BaseModel):
    """What a dataset is made of: the command's payload (CreateDatasetPayload) and the HTTP request
    (schemas.datasets.CreateDatasetRequest, which adds the name) both."""

    dimensions: Integer = Field(ge=1, le=MAX_DIMENSIONS)
    metric: Metric = "cosine"
    metadata_schema: dict[FieldName, FieldType] = Field(
        default_factory=dict, description="Typed metadata fields that filters may use"
    )
    text_field: FieldName | None = Field(
        default=None, description="Metadata field indexed for full-text search"
    )
    embedder: EmbedderConfig | None = Field(
        default=None,
        description='Embeds the text of records sent without a vector, e.g. {"kind": "local", "model": '
        '"all-minilm-l6-v2"} (384 dimensions) or {"kind": "openai", "model": ..., "endpoint": <a name in '
        "TRIBUTARY_EMBEDDING_ENDPOINTS>}; none: vectors are required",
    )
    # Absent from the commands of datasets created before it was configurable: they keep their plain words.
    # A new dataset's default is the request's (DEFAULT_ANALYSIS).
    text_analysis: TextAnalysis = Field(
        default=PLAIN_WORDS,
        description="How full-text search and $match analyse texts: tokenizer, language (Snowball stemming), "
        "stop_words, unicode_folding, ascii_folding",
    )
    # Absent from the commands of datasets created before it was configurable: they keep today's graph.
    index: IndexConfig = Field(
        default_factory=IndexConfig,
        description="The HNSW index: m, ef_construction, and the target_recall (recall@10 against exact search) "
        "that each replica tunes its search breadth to reach",
    )


class CreateDatasetPayload(Payload, DatasetDefinition):
    @model_validator(mode="after")
    def _embedder_fits(self) -> CreateDatasetPayload:
        if self.embedder is not None and (reason := embedder_mismatch(self.embedder, self.dimensions)):
            raise ValueError(reason)
        return self


class DeleteDatasetPayload(Payload):
    pass


class UpsertVectorsPayload(Payload):
    """Columnar records: row i of `vectors` belongs to `ids[i]` (and `texts[i]`, `metadata[i]` when given)."""

    ids: list[VectorId]
    vectors: Float32Matrix
    texts: list[str | None] | None = None
    metadata: list[Metadata] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> UpsertVectorsPayload:
        rows = len(self.ids)
        if self.vectors.shape[0] != rows:
            raise ValueError(f"{rows} ids but {self.vectors.shape[0]} vectors")
        for column in ("texts", "metadata"):
            values = getattr(self, column)
            if values is not None and len(values) != rows:
                raise ValueError(f"{rows} ids but {len(values)} {column}")
        if len(set(self.ids)) != rows:
            raise ValueError("ids within one command must be unique")
        return self


class VectorSelection(BaseModel):
    """The vectors a delete removes: the command's payload (DeleteVectorsPayload) and the HTTP request
    (schemas.vectors.DeleteVectorsRequest, which bounds the ids a request may list) both."""

    # The rule of `_one_selector`, in the documents too.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["ids"], "properties": {"ids": {"type": "array"}, "filter": {"type": "null"}}},
                {
                    "required": ["filter"],
                    "properties": {"filter": {"type": "object", "minProperties": 1}, "ids": {"type": "null"}},
                },
            ]
        }
    )

    ids: list[VectorId] | None = Field(default=None, min_length=1)
    filter: FilterDict | None = Field(
        default=None,
        description="Delete every vector whose metadata matches (the query API's filter language)",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        if self.filter == {}:
            # An empty filter matches every vector: too easy to send by mistake to mean "delete all".
            raise ValueError("an empty filter would delete every vector; delete the dataset, or give ids")
        return self


class DeleteVectorsPayload(Payload, VectorSelection):
    pass


class MetadataChange(BaseModel):
    """A vector's new metadata: the command's payload and the HTTP request (schemas.vectors.MetadataPatch) both."""

    metadata: Metadata
    merge: bool = Field(default=True, description="Merge into the stored metadata, or replace it")


class UpdateMetadataPayload(Payload, MetadataChange):
    id: VectorId


# A snapshot's id is the id of the command that made it: the operation id its 202 answered.
SnapshotId = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


class Retention(BaseModel):
    """Which of a dataset's snapshots to keep after taking one: the command's payload (CreateSnapshotPayload),
    the HTTP request and a dataset's snapshot schedule (schemas/snapshots.py) all."""

    keep_last: Integer | None = Field(
        default=None, ge=1, le=10_000, description="Then keep at most this many snapshots of the dataset"
    )
    max_age_days: float | None = Field(
        default=None, gt=0, le=36_500, description="Then delete the dataset's snapshots older than this"
    )


class CreateSnapshotPayload(Payload, Retention):
    """Snapshot the dataset as the commands before this one left it; then apply the retention, if given, to
    the dataset's snapshots (the new one is always kept)."""


class DeleteSnapshotPayload(Payload):
    snapshot_id: SnapshotId


class RestoreSnapshotPayload(Payload):
    """Restore a snapshot of `source_dataset` into the command's dataset: the same dataset (its state is
    replaced) or a new one (it must not exist)."""

    source_dataset: Name
    snapshot_id: SnapshotId


class CreateDataset(Envelope):
    type: Literal["CreateDataset"] = "CreateDataset"
    payload: CreateDatasetPayload


class DeleteDataset(Envelope):
    type: Literal["DeleteDataset"] = "DeleteDataset"
    payload: DeleteDatasetPayload = Field(default_factory=DeleteDatasetPayload)


class UpsertVectors(Envelope):
    type: Literal["UpsertVectors"] = "UpsertVectors"
    payload: UpsertVectorsPayload


class DeleteVectors(Envelope):
    type: Literal["DeleteVectors"] = "DeleteVectors"
    payload: DeleteVectorsPayload


class UpdateMetadata(Envelope):
    type: Literal["UpdateMetadata"] = "UpdateMetadata"
    payload: UpdateMetadataPayload


class CreateSnapshot(Envelope):
    type: Literal["CreateSnapshot"] = "CreateSnapshot"
    payload: CreateSnapshotPayload = Field(default_factory=CreateSnapshotPayload)


class DeleteSnapshot(Envelope):
    type: Literal["DeleteSnapshot"] = "DeleteSnapshot"
    payload: DeleteSnapshotPayload


class RestoreSnapshot(Envelope):
    type: Literal["RestoreSnapshot"] = "RestoreSnapshot"
    payload: RestoreSnapshotPayload


Command = Annotated[
    CreateDataset
    | DeleteDataset
    | UpsertVectors
    | DeleteVectors
    | UpdateMetadata
    | CreateSnapshot
    | DeleteSnapshot
    | RestoreSnapshot,
    Field(discriminator="type"),
]

_commands: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(raw: bytes | str) -> Command:
    """Decode one command from its JSON form; raises pydantic.ValidationError with the reason."""
    return _commands.validate_json(raw)
