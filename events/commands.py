"""Commands: imperative messages on the command topic, keyed by tenant/dataset."""

from __future__ import annotations

import binascii
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from events.analysis import PLAIN_WORDS, TextAnalysis
from events.envelope import Envelope
from events.filters import FilterDict
from events.names import Name
from events.vectors import Float32Matrix, decode_base64, encode_base64

Metric = Literal["cosine", "dot", "l2"]
Float32Array = npt.NDArray[np.float32]
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
# Named vector fields a dataset may declare beside its default vector: each is one more HNSW index per replica.
MAX_VECTOR_FIELDS = 8
# The name of a dataset's default vector (the record's `vector`) wherever a field is named: a search's `field`,
# a fused query's inputs. No named field may take it.
DEFAULT_VECTOR_FIELD = "vector"
# A named vector field: a plain identifier (it names a DeepLake column, `vector.<name>`).
VectorFieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
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
LocalImageModel = Literal["pixels-v1"]
# The local image embedders, with the width of their embeddings (tributary/embedding/local_image.py).
LOCAL_IMAGE_MODEL_DIMENSIONS: dict[str, int] = {"pixels-v1": 256}


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


class LocalImageEmbedderConfig(Payload):
    """An image embedder that runs inside the Tributary process with nothing downloaded: pixel features, not a
    semantic model (tributary/embedding/local_image.py says what it sees)."""

    kind: Literal["local-image"] = "local-image"
    model: LocalImageModel = "pixels-v1"

    @property
    def dimensions(self) -> int | None:
        return LOCAL_IMAGE_MODEL_DIMENSIONS[self.model]


class OpenAIImageEmbedderConfig(Payload):
    """An OpenAI-compatible `POST {url}/embeddings` endpoint that embeds images (a CLIP-style model server):
    `{"model", "input": [{"image": <base64>}, ...]}`, answered as for texts. The operator configured it under
    `endpoint`, as for text (TRIBUTARY_EMBEDDING_ENDPOINTS)."""

    kind: Literal["openai-image"] = "openai-image"
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    endpoint: Name = Field(description="The name of an embedding endpoint the operator configured")
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DIMENSIONS,
        description="Sent as the request's `dimensions`; without it the model's own width must equal the field's",
    )


# What embeds a record's text (a dataset's default vector, a named field).
EmbedderConfig = Annotated[LocalEmbedderConfig | OpenAIEmbedderConfig, Field(discriminator="kind")]
TextEmbedder = LocalEmbedderConfig | OpenAIEmbedderConfig
# What embeds a record's image (a named field only).
ImageEmbedder = LocalImageEmbedderConfig | OpenAIImageEmbedderConfig
AnyEmbedder = TextEmbedder | ImageEmbedder
FieldEmbedderConfig = Annotated[AnyEmbedder, Field(discriminator="kind")]

_embedder_configs: TypeAdapter[EmbedderConfig] = TypeAdapter(EmbedderConfig)


def parse_embedder_config(data: object) -> LocalEmbedderConfig | OpenAIEmbedderConfig:
    """An embedder configuration from its JSON object form (as stored with a dataset)."""
    return _embedder_configs.validate_python(data)


def embedder_mismatch(embedder: AnyEmbedder, dimensions: int) -> str | None:
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


class VectorField(BaseModel):
    """A named vector field of a dataset, beside its default vector: its own width, metric, embedder and HNSW
    index. A record may carry it or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dimensions: Integer = Field(ge=1, le=MAX_DIMENSIONS)
    metric: Metric = "cosine"
    embedder: FieldEmbedderConfig | None = Field(
        default=None,
        description="Embeds the record's text into this field when the record gives no vector for it; an image "
        'embedder ({"kind": "local-image"} or {"kind": "openai-image", ...}) embeds the record\'s image of '
        "this field instead, and the field stores the images",
    )
    index: IndexConfig = Field(default_factory=IndexConfig, description="This field's HNSW index")

    @model_validator(mode="after")
    def _embedder_fits(self) -> VectorField:
        if self.embedder is not None and (reason := embedder_mismatch(self.embedder, self.dimensions)):
            raise ValueError(reason)
        return self

    @property
    def image_embedder(self) -> ImageEmbedder | None:
        """The field's embedder when it embeds images: then the field keeps each record's image."""
        return self.embedder if isinstance(self.embedder, ImageEmbedder) else None

    @property
    def text_embedder(self) -> TextEmbedder | None:
        return self.embedder if isinstance(self.embedder, TextEmbedder) else None


def image_fields(fields: Mapping[str, VectorField]) -> list[str]:
    """The named fields that keep images (their embedder embeds images), in declaration order."""
    return [name for name, field in fields.items() if field.image_embedder is not None]


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
    # Absent from the commands of datasets created before named vectors: they have the default vector alone.
    vectors: dict[VectorFieldName, VectorField] = Field(
        default_factory=dict,
        max_length=MAX_VECTOR_FIELDS,
        description=f"Named vector fields beside the default vector (at most {MAX_VECTOR_FIELDS}), e.g. "
        '{"image": {"dimensions": 512, "metric": "cosine"}}: each with its own metric, embedder and index; '
        f'a record may carry any of them. The default vector is the field "{DEFAULT_VECTOR_FIELD}"',
    )

    @model_validator(mode="after")
    def _vector_fields_named_apart(self) -> Self:
        for name in self.vectors:
            if name == DEFAULT_VECTOR_FIELD:
                raise ValueError(f"{name!r} is the default vector's field: give a named field another name")
            if name in self.metadata_schema or name == self.text_field:
                raise ValueError(f"the vector field {name!r} has the name of a metadata field")
        return self


class CreateDatasetPayload(Payload, DatasetDefinition):
    @model_validator(mode="after")
    def _embedder_fits(self) -> CreateDatasetPayload:
        if self.embedder is not None and (reason := embedder_mismatch(self.embedder, self.dimensions)):
            raise ValueError(reason)
        return self


class DeleteDatasetPayload(Payload):
    pass


class FieldVectors(Payload):
    """The vectors of one named field in an upsert: row i of `vectors` belongs to the record at `rows[i]`; a
    record not listed does not carry the field."""

    rows: list[Annotated[int, Field(ge=0)]]
    vectors: Float32Matrix

    @model_validator(mode="after")
    def _aligned(self) -> FieldVectors:
        if self.vectors.shape[0] != len(self.rows):
            raise ValueError(f"{len(self.rows)} rows but {self.vectors.shape[0]} vectors")
        if len(set(self.rows)) != len(self.rows):
            raise ValueError("a record carries a field's vector once")
        return self


def _decode_base64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("bytes are carried as a base64 string")
    try:
        return decode_base64(value)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from None


# Bytes in a JSON message: standard base64 without line breaks.
Base64Data = Annotated[
    bytes,
    PlainValidator(_decode_base64),
    PlainSerializer(encode_base64, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class FieldImages(Payload):
    """The images of one image field in an upsert, as sent (PNG or JPEG bytes): image i belongs to the record at
    `rows[i]`; a record not listed has none. Only commands carry them (to the applier, which stores them):
    events carry the vectors they were embedded into, never the images."""

    rows: list[Annotated[int, Field(ge=0)]]
    images: list[Base64Data]

    @model_validator(mode="after")
    def _aligned(self) -> FieldImages:
        if len(self.images) != len(self.rows):
            raise ValueError(f"{len(self.rows)} rows but {len(self.images)} images")
        if len(set(self.rows)) != len(self.rows):
            raise ValueError("a record carries a field's image once")
        return self


def dense_images(
    images: Mapping[str, FieldImages], fields: Sequence[str], rows: int
) -> dict[str, list[bytes]]:
    """Each image field's images by row, empty bytes for a record without one (the form DeepLake stores)."""
    dense: dict[str, list[bytes]] = {}
    for name in fields:
        column = [b""] * rows
        if (given := images.get(name)) is not None:
            for row, image in zip(given.rows, given.images, strict=True):
                column[row] = image
        dense[name] = column
    return dense


def dense_named_vectors(
    named: Mapping[str, FieldVectors], fields: Mapping[str, VectorField], rows: int
) -> dict[str, Float32Array]:
    """Each of `fields` as a (rows, its dimensions) matrix, NaN in the rows of records that do not carry it: the
    form DeepLake stores and projections load (every vector given is finite, so NaN marks an absent one)."""
    dense: dict[str, Float32Array] = {}
    for name, field in fields.items():
        matrix = np.full((rows, field.dimensions), np.nan, dtype=np.float32)
        if (given := named.get(name)) is not None:
            matrix[given.rows] = given.vectors
        dense[name] = matrix
    return dense


def dense_default(vectors: Float32Array, absent: Sequence[int]) -> Float32Array:
    """The default vectors with NaN in the rows of records without one (as `dense_named_vectors`)."""
    if not absent:
        return vectors
    dense = vectors.copy()
    dense[list(absent)] = np.nan
    return dense


class UpsertVectorsPayload(Payload):
    """Columnar records: row i of `vectors` belongs to `ids[i]` (and `texts[i]`, `metadata[i]` when given).
    An upsert replaces the whole record: a named field it does not carry is gone from the record."""

    ids: list[VectorId]
    vectors: Float32Matrix
    texts: list[str | None] | None = None
    metadata: list[Metadata] | None = None
    # Absent from the commands of datasets without named vector fields.
    named_vectors: dict[VectorFieldName, FieldVectors] = Field(
        default_factory=dict, description="The records' vectors of the dataset's named fields, by field"
    )
    vector_absent: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        description="Rows of records without the default vector (zeros in `vectors`): each carries a named field",
    )
    # Absent from the commands of datasets without image fields.
    images: dict[VectorFieldName, FieldImages] = Field(
        default_factory=dict, description="The records' images of the dataset's image fields, by field"
    )

    @model_validator(mode="after")
    def _aligned(self) -> UpsertVectorsPayload:
        rows = len(self.ids)
        if self.vectors.shape[0] != rows:
            raise ValueError(f"{rows} ids but {self.vectors.shape[0]} vectors")
        for column in ("texts", "metadata"):
            values = getattr(self, column)
            if values is not None and len(values) != rows:
                raise ValueError(f"{rows} ids but {len(values)} {column}")
        listed = [(name, field.rows) for name, field in self.named_vectors.items()]
        listed += [(name, given.rows) for name, given in self.images.items()]
        for name, field_rows in listed:
            if field_rows and max(field_rows) >= rows:
                raise ValueError(f"the field {name!r} names row {max(field_rows)} of {rows}")
        carried = {row for field in self.named_vectors.values() for row in field.rows}
        if stray := sorted(set(self.vector_absent) - carried):
            raise ValueError(
                f"row {stray[0]} has no default vector and no named one: a record carries a vector"
            )
        if len(set(self.ids)) != rows:
            raise ValueError("ids within one command must be unique")
        return self

    def rows(self, start: int, stop: int) -> UpsertVectorsPayload:
        """The records of rows start to stop (a part of a split upsert), with their named vectors."""
        named = {}
        for name, field in self.named_vectors.items():
            kept = [n for n, row in enumerate(field.rows) if start <= row < stop]
            named[name] = FieldVectors(
                rows=[field.rows[n] - start for n in kept], vectors=field.vectors[kept]
            )
        images = {}
        for name, given in self.images.items():
            kept = [n for n, row in enumerate(given.rows) if start <= row < stop]
            images[name] = FieldImages(
                rows=[given.rows[n] - start for n in kept], images=[given.images[n] for n in kept]
            )
        return UpsertVectorsPayload(
            ids=self.ids[start:stop],
            vectors=self.vectors[start:stop],
            texts=self.texts[start:stop] if self.texts is not None else None,
            metadata=self.metadata[start:stop] if self.metadata is not None else None,
            named_vectors=named,
            vector_absent=[row - start for row in self.vector_absent if start <= row < stop],
            images={name: given for name, given in images.items() if given.rows},
        )


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
