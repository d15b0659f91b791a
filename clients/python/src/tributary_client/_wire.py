"""What travels: packed vectors, records, idempotency keys, and when to retry. No I/O here."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeAlias


class _ArrayLike(Protocol):
    """What numpy arrays offer: the client packs them without importing numpy."""

    def astype(self, dtype: str) -> Any: ...


Vector: TypeAlias = Sequence[float] | _ArrayLike
"""A vector: a sequence of numbers, or a numpy array (any float dtype)."""


def pack(vector: Vector) -> str:
    """A vector as its little-endian float32 bytes in base64: about 4x smaller than JSON numbers and much
    cheaper for the server to parse."""
    if hasattr(vector, "astype"):
        raw: bytes = vector.astype("<f4").tobytes()
    else:
        values = list(vector)
        raw = struct.pack(f"<{len(values)}f", *values)
    return base64.b64encode(raw).decode("ascii")


def record_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record of an upsert as the server takes it: `id`, `vector` (packed), `text`, `metadata`."""
    unknown = set(record) - {"id", "vector", "text", "metadata"}
    if unknown:
        raise ValueError(f"a record has id, vector, text and metadata; not {sorted(unknown)}")
    body = {name: value for name, value in record.items() if value is not None}
    if "vector" in body:
        body["vector"] = pack(body["vector"])
    return body


def batch_key(prefix: str, index: int, records: Sequence[Mapping[str, Any]]) -> str:
    """An Idempotency-Key derived from a batch: the same batch of the same stream always gets the same key, so
    a batch sent again (a retry, or a resumed ingest with the same prefix) is applied once."""
    digest = hashlib.sha256(f"{prefix}\0{index}".encode())
    # Not one json.dumps of the batch: that cost as much CPU as httpx's own encoding of the body (bench/sdk.py).
    # The strings (ids, texts, packed vectors) go in as they are, length-prefixed; the other values (metadata)
    # as one JSON document for the batch.
    others: list[dict[str, Any]] = []
    for record in records:
        digest.update(b"\1")
        for name in sorted(record):
            if isinstance(value := record[name], str):
                digest.update(f"\0{name}\0{len(value)}\0".encode())
                digest.update(value.encode())
        others.append({name: value for name, value in record.items() if not isinstance(value, str)})
    digest.update(json.dumps(others, sort_keys=True, separators=(",", ":"), default=str).encode())
    return f"batch-{digest.hexdigest()[:48]}"


def batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Retries:
    """Exponential backoff with full jitter, honouring the server's Retry-After, bounded in attempts."""

    attempts: int = 6
    base_s: float = 0.25
    cap_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
        return max(backoff, retry_after or 0.0)


def retry_after(value: str | None) -> float | None:
    """The Retry-After header in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
