"""Records from files, for `tributary-cli ingest`: JSON Lines, CSV, Parquet and `.npy` (with ids).

Each reader yields records (`id`, `vector`, `text`, `metadata`) in file order and says where each came from, so
a bad one is reported by file, line or row, and field. A record field a file does not have is left out; any other
column of a CSV or Parquet file becomes a metadata field.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD_FIELDS = ("id", "vector", "text", "metadata")


class BadRecord(ValueError):
    """A record a file holds that cannot be sent: `where` is `file:line N` or `file:row N`, then the field."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(f"{where}: {field}: {reason}")


@dataclass(frozen=True)
class Source:
    """A file of records: how many it holds (when cheap to know) and how to read them from a position."""

    path: Path
    ids: Path | None = None

    @property
    def kind(self) -> str:
        suffix = self.path.suffix.lower()
        kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".npy": "npy"}
        if suffix not in kinds:
            raise BadRecord(str(self.path), "file", f"unknown kind {suffix!r}: jsonl, csv, parquet or npy")
        return kinds[suffix]

    def count(self) -> int:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(self.path).metadata.num_rows)
        if self.kind == "npy":
            return int(_npy(self.path).shape[0])
        with self.path.open("rb") as lines:
            return sum(1 for line in lines if line.strip()) - (1 if self.kind == "csv" else 0)

    def records(self, skip: int = 0) -> Iterator[dict[str, Any]]:
        """The records from the `skip`-th on (0-based), checked."""
        read = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet, "npy": self._npy_records}[self.kind]
        for where, record in read(self.path, skip):
            yield _checked(where, record)

    def _npy_records(self, path: Path, skip: int) -> Iterator[tuple[str, dict[str, Any]]]:
        vectors = _npy(path)
        ids = self.ids.read_text().splitlines() if self.ids else None
        if ids is not None and len(ids) != len(vectors):
            raise BadRecord(str(self.ids), "id", f"{len(ids)} ids for {len(vectors)} vectors")
        for row in range(skip, len(vectors)):
            record: dict[str, Any] = {"vector": vectors[row]}
            if ids is not None:
                record["id"] = ids[row]
            yield f"{path}:row {row}", record


def _npy(path: Path) -> Any:
    import numpy as np

    vectors = np.load(path, mmap_mode="r")
    if vectors.ndim != 2:
        raise BadRecord(str(path), "vector", f"expected a 2-d array of vectors, found shape {vectors.shape}")
    return vectors


def _jsonl(path: Path, skip: int) -> Iterator[tuple[str, dict[str, Any]]]:
    seen = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            seen += 1
            if seen <= skip:
                continue
            where = f"{path}:line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadRecord(where, "line", f"not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise BadRecord(where, "line", "not a JSON object")
            unknown = set(record) - set(RECORD_FIELDS)
            if unknown:
                raise BadRecord(where, sorted(unknown)[0], "not a record field (id, vector, text, metadata)")
            yield where, record


def _csv(path: Path, skip: int) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as rows:
        reader = csv.DictReader(rows)
        for number, row in enumerate(reader, start=2):
            if number - 2 < skip:
                continue
            where = f"{path}:line {number}"
            record: dict[str, Any] = {}
            metadata: dict[str, Any] = {}
            for column, value in row.items():
                if column in ("id", "text"):
                    record[column] = value
                elif column == "vector":
                    record["vector"] = _json_field(where, "vector", value)
                elif column == "metadata":
                    metadata.update(_json_field(where, "metadata", value) or {})
                elif value != "":
                    metadata[column] = _scalar(value)
            if metadata:
                record["metadata"] = metadata
            yield where, record


def _parquet(path: Path, skip: int) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        if row + batch.num_rows <= skip:
            row += batch.num_rows
            continue
        columns = batch.to_pydict()
        names = list(columns)
        for i in range(batch.num_rows):
            if row >= skip:
                record: dict[str, Any] = {}
                metadata: dict[str, Any] = {}
                for name in names:
                    value = columns[name][i]
                    if name in ("id", "vector", "text"):
                        record[name] = value
                    elif name == "metadata":
                        metadata.update(json.loads(value) if isinstance(value, str) else value or {})
                    elif value is not None:
                        metadata[name] = value
                if metadata:
                    record["metadata"] = metadata
                yield f"{path}:row {row}", record
            row += 1


def _json_field(where: str, field: str, value: str) -> Any:
    if value == "":
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadRecord(where, field, f"not JSON ({exc.msg})") from None


def _scalar(value: str) -> Any:
    """A CSV cell as the number it spells, else as text."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        if isinstance(number, float) and not math.isfinite(number):
            break
        return number
    return value


def _checked(where: str, record: dict[str, Any]) -> dict[str, Any]:
    record = {name: value for name, value in record.items() if value is not None}
    if "id" in record and not isinstance(record["id"], str):
        raise BadRecord(where, "id", "must be a string")
    vector = record.get("vector")
    if vector is not None and not hasattr(vector, "astype") and not _finite_numbers(vector):
        raise BadRecord(where, "vector", "must be a list of finite numbers")
    if "metadata" in record and not isinstance(record["metadata"], dict):
        raise BadRecord(where, "metadata", "must be an object")
    if "vector" not in record and "text" not in record:
        raise BadRecord(where, "vector", "a record needs a vector or a text")
    return record


def _finite_numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
    )
