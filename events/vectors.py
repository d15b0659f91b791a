"""Vectors on the wire: a float32 matrix packed as base64 of its little-endian bytes.

Measured against JSON float lists in bench/codec.py (figures in docs/benchmarks.md): packing is several
times smaller and an order of magnitude faster to encode and decode, so it is the wire form. Direct
producers may still send a list of float lists; it is accepted and packed on the way out.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pybase64
from pydantic import PlainSerializer, PlainValidator, SerializationInfo, WithJsonSchema

LITTLE_F32 = np.dtype("<f4")

Matrix = npt.NDArray[np.float32]


def pack(matrix: Matrix) -> dict[str, Any]:
    rows, dims = matrix.shape
    data = np.ascontiguousarray(matrix, dtype=LITTLE_F32).tobytes()
    return {"shape": [rows, dims], "dtype": "float32", "data": pybase64.b64encode_as_string(data)}


def unpack(packed: dict[str, Any]) -> Matrix:
    shape = packed.get("shape")
    if packed.get("dtype", "float32") != "float32":
        raise ValueError("packed vectors must have dtype float32")
    if not (
        isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and n >= 0 for n in shape)
    ):
        raise ValueError("packed vectors need shape [rows, dimensions]")
    try:
        raw = pybase64.b64decode(packed["data"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("packed vectors need base64 data") from exc
    rows, dims = shape
    if len(raw) != rows * dims * 4:
        raise ValueError(f"packed data holds {len(raw)} bytes, shape {rows}x{dims} needs {rows * dims * 4}")
    return np.frombuffer(raw, dtype=LITTLE_F32).reshape(rows, dims).astype(np.float32)


def as_matrix(value: Any) -> Matrix:
    """Validate a matrix from its packed form, a numpy array or nested float lists; reject NaN and infinity."""
    if isinstance(value, dict):
        matrix = unpack(value)
    else:
        try:
            matrix = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError("vectors must be numbers") from exc
        if matrix.ndim != 2:
            raise ValueError("vectors must be a list of equally long lists of numbers")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"vector at index {row} holds NaN or infinity")
    return matrix


def _serialize(matrix: Matrix, info: SerializationInfo) -> Any:
    return pack(matrix) if info.mode_is_json() else matrix


Float32Matrix = Annotated[
    Matrix,
    PlainValidator(as_matrix),
    PlainSerializer(_serialize),
    WithJsonSchema(
        {
            "title": "Float32Matrix",
            "description": "Row-major float32 matrix: base64 of the little-endian bytes, with its shape. "
            "A list of float lists is accepted too.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["shape", "data"],
                    "properties": {
                        "shape": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                        "dtype": {"const": "float32"},
                        "data": {"type": "string", "contentEncoding": "base64"},
                    },
                },
                {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            ],
        }
    ),
]
