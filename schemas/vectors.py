"""Request models of the vector write routes."""

from __future__ import annotations

import binascii
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from events.commands import Metadata, MetadataChange, VectorFieldName, VectorId, VectorSelection
from events.vectors import decode_base64, encode_base64
from schemas.requests import RequestModel
from tributary.embedding.images import ImageRef

MAX_RECORDS = 10_000

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Vectors are stored and searched as float32: 1e39 is a finite double but an infinite float32.
OUTSIDE_FLOAT32 = f"is outside the float32 range (at most {FLOAT32_MAX:.6g} in size)"


def _fits_float32(vector: list[float]) -> list[float]:
    if vector and (max(vector) > FLOAT32_MAX or min(vector) < -FLOAT32_MAX):
        index = next(i for i, value in enumerate(vector) if abs(value) > FLOAT32_MAX)
        raise ValueError(f"value {index} {OUTSIDE_FLOAT32}")
    return vector


# A query vector as a list of JSON numbers, each a finite float32. (Records are checked in bulk when the command
# API makes their float32 matrix: per record, this validator would cost a 1,000-vector write about 12 ms.)
Float32List = Annotated[list[FiniteFloat], AfterValidator(_fits_float32)]


def _unpack_vector(value: Any) -> npt.NDArray[np.float32]:
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 1:
        # Unpacked already by a transport that carries bytes (gRPC), and found finite there.
        return value
    if not isinstance(value, str):
        raise ValueError("a packed vector is a base64 string")
    try:
        raw = decode_base64(value)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from None
    if len(raw) % 4:
        raise ValueError("a packed vector is little-endian float32: its length must be a multiple of 4 bytes")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise ValueError(f"value {int(np.argmin(np.isfinite(vector)))} is NaN or infinite")
    return vector


# Parsing 1,000 x 384 JSON floats costs the command API most of a request (docs/benchmarks.md); packed vectors
# skip it. The same encoding as OpenAI's `encoding_format: "base64"` embeddings.
PackedVector = Annotated[
    npt.NDArray[np.float32],
    PlainValidator(_unpack_vector),
    PlainSerializer(lambda v: encode_base64(np.asarray(v, dtype="<f4").tobytes())),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "description": "The vector's little-endian float32 bytes, base64-encoded",
        }
    ),
]


def _image_ref(value: Any) -> ImageRef:
    if isinstance(value, ImageRef):
        # Built by a transport that carries bytes (gRPC).
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("an image is its bytes in base64, or an http(s) URL")
    try:
        return ImageRef.parse(value)
    except binascii.Error as exc:
        raise ValueError(f"neither an http(s) URL nor valid base64: {exc}") from None


# An image a record or a query gives: its PNG or JPEG bytes in base64, or a URL the server fetches from an image
# source the operator listed (tributary/embedding/images.py).
ImageInput = Annotated[
    ImageRef,
    PlainValidator(_image_ref),
    PlainSerializer(str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A PNG or JPEG image: its bytes in base64, or an http(s) URL under an image source "
            "the operator listed",
        }
    ),
]


class VectorRecord(RequestModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: VectorId | None = Field(default=None, description="Client id; generated and returned when missing")
    vector: list[FiniteFloat] | PackedVector | None = Field(
        default=None, description="The vector: a list of numbers, or packed float32 bytes in base64"
    )
    text: str | None = None
    metadata: Metadata | None = None
    vectors: dict[VectorFieldName, list[FiniteFloat] | PackedVector] | None = Field(
        default=None,
        description="The record's vectors of the dataset's named fields, by field (numbers or packed float32); "
        "a field not given is embedded from `text` when it has an embedder, else the record does not carry it",
    )
    images: dict[VectorFieldName, ImageInput] | None = Field(
        default=None,
        description="The record's images of the dataset's image fields (fields whose embedder embeds images), by "
        "field: each is stored, and embedded into the field unless `vectors` gives the field's vector",
    )


class UpsertVectorsRequest(RequestModel):
    vectors: list[VectorRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class DeleteVectorsRequest(RequestModel, VectorSelection):
    ids: list[VectorId] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)


class MetadataPatch(RequestModel, MetadataChange):
    pass
