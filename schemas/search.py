"""Request and response models of the read routes: search, get, scroll, count."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from events.commands import (
    DEFAULT_VECTOR_FIELD,
    MAX_VECTOR_FIELDS,
    Base64Data,
    Integer,
    VectorFieldName,
    VectorId,
)
from events.filters import FilterDict
from schemas.requests import RequestModel
from schemas.vectors import MAX_RECORDS, FiniteFloat, Float32List, ImageInput, PackedVector

# "vectors": the named vector fields the record carries; "images": the images of its image fields.
Include = Literal["vector", "vectors", "metadata", "text", "images"]
# Hybrid search's fusions (query_api/fusion.py); "weighted" is the earlier name of "min_max".
Fusion = Literal["rrf", "min_max", "dbsf", "weighted"]
# Chosen by bench/relevance.py on the tuning halves of its labelled sets (docs/benchmarks.md has the figures).
DEFAULT_FUSION: Fusion = "min_max"
DEFAULT_ALPHA = 0.55
MAX_K = 1000
# The breadth of an HNSW search a request may ask for: beyond it an exact scan is the cheaper sure answer.
MAX_EF = 10_000


def _metadata_only() -> list[Include]:
    return ["metadata"]


MAX_OFFSET = 10_000
# The inputs one fused search may have: each vector field, and BM25 twice over (say, two phrasings).
MAX_QUERY_INPUTS = MAX_VECTOR_FIELDS + 3

QueryText = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class QueryInput(RequestModel):
    """One input of a fused search (`queries`): a vector field searched with a vector (or `text` embedded by
    the field's embedder), or BM25 over the texts (`"mode": "text"`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, ser_json_inf_nan="constants")

    mode: Literal["vector", "text"] = "vector"
    field: VectorFieldName = Field(
        default=DEFAULT_VECTOR_FIELD,
        description=f'The vector field searched (vector mode); "{DEFAULT_VECTOR_FIELD}" is the default vector',
    )
    vector: Float32List | PackedVector | None = Field(
        default=None, description="The query vector of the field"
    )
    text: QueryText | None = Field(
        default=None,
        description="vector mode: embedded by the field's embedder when no vector; text mode: BM25",
    )
    image: ImageInput | None = Field(
        default=None, description="vector mode: embedded by the field's image embedder when no vector"
    )
    weight: FiniteFloat = Field(
        default=1.0, ge=0.0, le=1000.0, description="This input's weight in the fusion"
    )

    @model_validator(mode="after")
    def _query_given(self) -> QueryInput:
        if self.mode == "vector" and self.vector is None and self.text is None and self.image is None:
            raise ValueError("a vector input needs a vector (or text or an image to embed)")
        if self.mode == "text" and (
            self.text is None
            or self.vector is not None
            or self.image is not None
            or "field" in self.model_fields_set
        ):
            raise ValueError("a text input (BM25) takes `text` alone, no vector, image or field")
        return self


class SearchRequest(RequestModel):
    # The rule of `_query_given`, in the document too: text, or a vector in vector mode (the default). Its JSON
    # is its search cache key (query_api/cache.py): no float may be written as `null`.
    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        ser_json_inf_nan="constants",
        json_schema_extra={
            "anyOf": [
                {"required": ["queries"], "properties": {"queries": {"type": "array"}}},
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["image"], "properties": {"image": {"type": "string"}}},
                {
                    "required": ["vector"],
                    "properties": {"vector": {"not": {"type": "null"}}, "mode": {"const": "vector"}},
                },
            ]
        },
    )

    vector: Float32List | PackedVector | None = Field(
        default=None, description="The query vector (numbers, or packed float32 in base64)"
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="Query text: BM25, and embedded when no vector",
    )
    image: ImageInput | None = Field(
        default=None,
        description="A query image, embedded by the image embedder of `field`: its bytes in base64, or a URL",
    )
    mode: Literal["vector", "text", "hybrid"] = "vector"
    field: VectorFieldName = Field(
        default=DEFAULT_VECTOR_FIELD,
        description=f'The vector field searched in vector and hybrid modes: "{DEFAULT_VECTOR_FIELD}" (the default '
        "vector) or a named field of the dataset",
    )
    queries: list[QueryInput] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_QUERY_INPUTS,
        description="Several inputs at once (vector fields, BM25), fused with `fusion` and each input's weight, "
        "under the one filter; instead of vector, text, mode, field and alpha",
    )
    k: Integer = Field(default=10, ge=1, le=MAX_K)
    offset: Integer = Field(default=0, ge=0, le=MAX_OFFSET, description="Skip this many results (paging)")
    filter: FilterDict | None = None
    score_threshold: FiniteFloat | None = Field(
        default=None,
        description="cosine/dot: keep scores >= this; l2: keep distances <= this (vector mode only)",
    )
    include: list[Include] = Field(default_factory=_metadata_only)
    fusion: Fusion = Field(
        default=DEFAULT_FUSION,
        description="hybrid: rrf (reciprocal ranks), min_max (relative scores, alias weighted) or dbsf "
        "(scores normalised by mean and 3 standard deviations)",
    )
    rrf_k: Integer = Field(default=60, ge=1, le=10_000)
    alpha: FiniteFloat = Field(
        default=DEFAULT_ALPHA,
        ge=0.0,
        le=1.0,
        description="hybrid: the vector side's weight in every fusion, the text side's being 1 - alpha",
    )

    exact: bool = Field(
        default=False, description="Scan every row instead of the HNSW index: the exact top k (recall 1)"
    )
    ef: Integer | None = Field(
        default=None,
        ge=1,
        le=MAX_EF,
        description="The HNSW search breadth instead of the one tuned to the dataset's target recall "
        "(larger: better recall, slower)",
    )

    @model_validator(mode="after")
    def _query_given(self) -> SearchRequest:
        if self.exact and self.ef is not None:
            raise ValueError("give `exact` or `ef`, not both: an exact search has no breadth")
        if self.queries is not None:
            single = {
                "vector",
                "text",
                "image",
                "mode",
                "field",
                "alpha",
                "score_threshold",
            } & self.model_fields_set
            if single:
                raise ValueError(f"give `queries` or {', '.join(sorted(single))}, not both")
            return self
        if self.mode == "text" and {"field", "image"} & self.model_fields_set:
            raise ValueError(
                "text mode searches the texts: `field` names a vector field, and `image` searches one"
            )
        if self.mode == "vector" and self.vector is None and self.text is None and self.image is None:
            raise ValueError("vector mode needs a vector (or text or an image to embed)")
        if self.mode in ("text", "hybrid") and self.text is None:
            raise ValueError(f"{self.mode} mode needs text")
        return self


class VectorView(BaseModel):
    id: str
    score: float | None = None
    vector: list[float] | None = None
    vectors: dict[str, list[float]] | None = Field(
        default=None, description="The named vector fields the record carries (include `vectors`)"
    )
    metadata: dict[str, Any] | None = None
    text: str | None = None
    images: dict[str, Base64Data] | None = Field(
        default=None,
        description="The images the record carries, by image field, as stored (include `images`; base64)",
    )


class ReadState(BaseModel):
    consistency: str = Field(
        description="The consistency level reached, or `fixed` for a read at a past `version`"
    )
    version: str = Field(description="The dataset version the answer reflects")
    reflects: dict[str, int] = Field(description="Event-log positions applied by this replica")


class SearchPage(BaseModel):
    results: list[VectorView]
    next_offset: int | None = Field(
        default=None, description="Offset of the next page, when there may be one"
    )


class SearchResponse(ReadState, SearchPage):
    pass


class GetVectorsRequest(RequestModel):
    ids: list[VectorId] = Field(min_length=1, max_length=MAX_RECORDS)
    include: list[Include] = Field(default_factory=_metadata_only)


class VectorsResponse(ReadState):
    results: list[VectorView]


class ScrollRequest(RequestModel):
    filter: FilterDict | None = None
    limit: Integer = Field(default=100, ge=1, le=MAX_RECORDS)
    cursor: str | None = Field(
        default=None, pattern=r"^[0-9]{1,19}$", description="`next_cursor` of the previous page"
    )
    include: list[Include] = Field(default_factory=_metadata_only)


class ScrollResponse(VectorsResponse):
    next_cursor: str | None = Field(default=None, description="Absent on the last page")


class CountRequest(RequestModel):
    filter: FilterDict | None = None


class CountResponse(ReadState):
    count: int


class SearchBatchRequest(RequestModel):
    searches: list[SearchRequest] = Field(min_length=1, max_length=100)


class SearchBatchResponse(ReadState):
    answers: list[SearchPage] = Field(description="One page per search, in the order asked")
