"""Snapshots in the backup store: their layout, their manifest, and reading them back verified.

A snapshot of tenant T's dataset D is a folder of objects `T/D/<snapshot id>/`: the rows in parts of at most
`PART_ROWS` (`vectors-NNNNN.npy`, float32, and `records-NNNNN.json`: ids, texts and metadata as stored; a named
field's `vector.<field>-NNNNN.npy`; an image field's `image.<field>-NNNNN.bin`, `pack_images`), and
`manifest.json`, written last. A snapshot exists once its manifest does, so a copy that stopped half way is
never listed, and a deletion removes the manifest first.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import SnapshotId
from events.commands import image_fields
from tributary.backup_store import (
    BackupStore,
    ObjectMissing,
    ObjectUnreadable,
    SealedStore,
    open_backup_store,
)
from tributary.failures import Conflict, NotFound
from tributary.settings import Settings
from tributary.storage import Committed, DatasetSpec, DatasetStore, Rows

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# 50,000 rows of 384 dimensions are 77 MB of vectors: a part is held in memory whole, once when written and
# once when read.
PART_ROWS = 50_000


class SnapshotFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sha256: str = Field(description="Of the object's content before any encryption")
    size: int


class SnapshotPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int
    vectors: SnapshotFile
    records: SnapshotFile
    # The named vector fields' matrices (NaN rows where a record does not carry the field), by field.
    named: dict[str, SnapshotFile] = Field(default_factory=dict)
    # The image fields' images (`pack_images`), by field; none in snapshots taken before they held images.
    images: dict[str, SnapshotFile] = Field(default_factory=dict)

    @property
    def files(self) -> list[SnapshotFile]:
        return [self.vectors, self.records, *self.named.values(), *self.images.values()]


class SnapshotManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    snapshot_id: SnapshotId
    tenant: str
    dataset: str
    spec: str = Field(description="The dataset's spec (DatasetSpec JSON) at the snapshot's version")
    version: str = Field(description="The DeepLake version copied, tagged snapshot-<id> in the dataset")
    vector_count: int
    created_at: datetime
    command_id: str = Field(
        description="The CreateSnapshot command: the snapshot reflects every command before it"
    )
    log_position: str | None = Field(
        default=None,
        description="Where the CreateSnapshot command is in the command log, as a consistency token "
        "(<partition>:<offset>): the snapshot reflects every command of the dataset's partition before that "
        "offset. None for a deployment backup (`tributary backup`), taken outside the log",
    )
    ledger: list[str] = Field(
        description="The last commands applied to the dataset at that version, newest last"
    )
    parts: list[SnapshotPart]
    encrypted: bool

    @property
    def dataset_spec(self) -> DatasetSpec:
        return DatasetSpec.from_json(self.spec)

    @property
    def size_bytes(self) -> int:
        return sum(file.size for part in self.parts for file in part.files)

    @property
    def dimensions(self) -> int:
        return self.dataset_spec.dimensions

    @property
    def metric(self) -> str:
        return self.dataset_spec.metric


class SnapshotCorrupt(Exception):
    """A snapshot whose objects do not match its manifest (or cannot be read): nothing was changed."""


def folder(tenant: str, dataset: str, snapshot_id: str = "") -> str:
    return f"{tenant}/{dataset}/{snapshot_id}/" if snapshot_id else f"{tenant}/{dataset}/"


def tag_of(snapshot_id: str) -> str:
    return f"snapshot-{snapshot_id}"


def encode_part(rows: Rows) -> tuple[bytes, bytes, dict[str, bytes]]:
    """The part's vectors, its records (ids, texts, metadata) and each named field's vectors."""
    records = json.dumps(
        {"ids": rows.ids, "texts": rows.texts, "metadata": rows.metadata}, ensure_ascii=False
    ).encode()
    return _npy(rows.vectors), records, {name: _npy(matrix) for name, matrix in rows.named.items()}


def pack_images(images: list[bytes]) -> bytes:
    """A part's images of one field in one object: their count and lengths (little-endian uint64), then their
    bytes one after the other (empty for a record without one)."""
    lengths = np.array([len(image) for image in images], dtype="<u8")
    return b"".join([np.array([len(images)], dtype="<u8").tobytes(), lengths.tobytes(), *images])


def unpack_images(data: bytes) -> list[bytes]:
    """The images of `pack_images`; ValueError when the object is not one."""
    count = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    offset = 8 + 8 * count
    if count < 0 or len(data) < offset:
        raise ValueError("it is too short for its lengths")
    lengths = np.frombuffer(data[8:offset], dtype="<u8").tolist()
    if offset + sum(lengths) != len(data):
        raise ValueError("its lengths do not add up to its size")
    images = []
    for length in lengths:
        images.append(data[offset : offset + length])
        offset += length
    return images


def _npy(matrix: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(matrix, dtype="<f4"), allow_pickle=False)
    return out.getvalue()


def described(name: str, data: bytes) -> SnapshotFile:
    return SnapshotFile(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def write_snapshot(
    backups: BackupStore,
    store: DatasetStore,
    tenant: str,
    dataset: str,
    at: str,
    source: Committed,
    *,
    snapshot_id: str,
    command_id: str,
    log_position: str | None = None,
) -> SnapshotManifest:
    """Copy the dataset's rows at `at` (a tag or version id: the commit `source` describes) to `backups` in
    parts, then the manifest, last."""
    base = folder(tenant, dataset, snapshot_id)

    def stored(name: str, data: bytes) -> SnapshotFile:
        backups.put(base + name, data)
        return described(name, data)

    parts: list[SnapshotPart] = []
    for index, start in enumerate(range(0, source.count, PART_ROWS)):
        rows = store.rows_at(tenant, dataset, at, start, min(start + PART_ROWS, source.count))
        vectors, records, named = encode_part(rows)
        parts.append(
            SnapshotPart(
                rows=len(rows),
                vectors=stored(f"vectors-{index:05d}.npy", vectors),
                records=stored(f"records-{index:05d}.json", records),
                named={
                    field: stored(f"vector.{field}-{index:05d}.npy", data) for field, data in named.items()
                },
                images={
                    field: stored(f"image.{field}-{index:05d}.bin", pack_images(images))
                    for field, images in rows.images.items()
                },
            )
        )
    manifest = SnapshotManifest(
        snapshot_id=snapshot_id,
        tenant=tenant,
        dataset=dataset,
        spec=source.spec.to_json(),
        version=source.version,
        vector_count=source.count,
        created_at=datetime.now(UTC),
        command_id=command_id,
        log_position=log_position,
        ledger=source.ledger,
        parts=parts,
        encrypted=isinstance(backups, SealedStore),
    )
    backups.put(base + MANIFEST, manifest.model_dump_json().encode())
    return manifest


def get_manifest(
    backups: BackupStore, tenant: str, dataset: str, snapshot_id: str
) -> SnapshotManifest | None:
    """The snapshot's manifest (None when there is no such snapshot); SnapshotCorrupt when it is unreadable."""
    key = folder(tenant, dataset, snapshot_id) + MANIFEST
    try:
        return SnapshotManifest.model_validate_json(backups.get(key))
    except ObjectMissing:
        return None
    except (ObjectUnreadable, ValidationError) as exc:
        raise SnapshotCorrupt(
            f"snapshot {snapshot_id}: its manifest cannot be read ({_first_line(exc)})"
        ) from exc


def list_manifests(backups: BackupStore, tenant: str, dataset: str) -> list[SnapshotManifest]:
    """The dataset's snapshots, oldest first. One whose manifest cannot be read is logged and left out (it can
    still be deleted by its id)."""
    found: list[SnapshotManifest] = []
    for key in backups.keys(folder(tenant, dataset)):
        parts = key.split("/")
        if len(parts) != 4 or parts[3] != MANIFEST:
            continue
        try:
            manifest = get_manifest(backups, tenant, dataset, parts[2])
        except SnapshotCorrupt as exc:
            log.warning("%s", exc)
            continue
        if manifest is not None:
            found.append(manifest)
    return sorted(found, key=lambda m: m.created_at)


async def find_snapshots(settings: Settings, tenant: str, dataset: str) -> list[SnapshotManifest]:
    """The dataset's snapshots in the configured backup store (a thread: the store's calls block)."""
    return await asyncio.to_thread(list_manifests, open_backup_store(settings), tenant, dataset)


async def existing_snapshot(
    settings: Settings, tenant: str, dataset: str, snapshot_id: str
) -> SnapshotManifest:
    """The snapshot a request names: NotFound when there is none (another tenant's is none either, its keys
    start with the tenant), Conflict when its manifest cannot be read."""
    try:
        found = await asyncio.to_thread(
            get_manifest, open_backup_store(settings), tenant, dataset, snapshot_id
        )
    except SnapshotCorrupt as exc:
        raise Conflict(str(exc)) from exc
    if found is None:
        raise NotFound(f"snapshot {snapshot_id!r} of {dataset!r} not found")
    return found


def verified_parts(backups: BackupStore, manifest: SnapshotManifest) -> Iterator[Rows]:
    """The snapshot's rows a part at a time (PART_ROWS), each object checked against the manifest's size and
    sha256 before its part is given: a restore holds one part, never the whole snapshot. SnapshotCorrupt as soon
    as something does not match; the consumer has then taken only the parts before, and undoes what it wrote
    from them (a restore changes nothing unless every part was right)."""
    if sum(part.rows for part in manifest.parts) != manifest.vector_count:
        raise SnapshotCorrupt(
            f"snapshot {manifest.snapshot_id}: its parts hold {sum(part.rows for part in manifest.parts)} rows, "
            f"the manifest says {manifest.vector_count}"
        )
    for part in manifest.parts:
        yield _verified_part(backups, manifest, part)


def _verified_part(backups: BackupStore, manifest: SnapshotManifest, part: SnapshotPart) -> Rows:
    base = folder(manifest.tenant, manifest.dataset, manifest.snapshot_id)
    spec = manifest.dataset_spec
    widths: dict[str | None, int] = {None: spec.dimensions}
    widths.update({name: field.dimensions for name, field in spec.vectors.items()})
    records = json.loads(verified(backups, base, part.records, manifest.snapshot_id))
    if len(records["ids"]) != part.rows or set(part.named) != set(spec.vectors):
        raise SnapshotCorrupt(f"snapshot {manifest.snapshot_id}: {part.records.name} does not match")
    vectors: dict[str | None, npt.NDArray[np.float32]] = {}
    for field, file in [(None, part.vectors), *part.named.items()]:
        matrix = np.load(io.BytesIO(verified(backups, base, file, manifest.snapshot_id)), allow_pickle=False)
        if matrix.shape != (part.rows, widths[field]):
            raise SnapshotCorrupt(
                f"snapshot {manifest.snapshot_id}: {file.name} does not hold {part.rows} rows"
            )
        vectors[field] = matrix.astype(np.float32, copy=False)
    kept = image_fields(spec.vectors)
    if set(part.images) - set(kept):
        raise SnapshotCorrupt(f"snapshot {manifest.snapshot_id}: images of a field the dataset does not have")
    images = {
        field: [b""] * part.rows
        if (packed := part.images.get(field)) is None
        else _images(backups, base, packed, manifest, part)
        for field in kept
    }
    return Rows(
        ids=records["ids"],
        vectors=vectors.pop(None),
        texts=records["texts"],
        metadata=records["metadata"],
        named={field: matrix for field, matrix in vectors.items() if field is not None},
        images=images,
    )


def _images(
    backups: BackupStore, base: str, file: SnapshotFile, manifest: SnapshotManifest, part: SnapshotPart
) -> list[bytes]:
    try:
        found = unpack_images(verified(backups, base, file, manifest.snapshot_id))
    except ValueError as exc:
        raise SnapshotCorrupt(f"snapshot {manifest.snapshot_id}: {file.name}: {exc}") from None
    if len(found) != part.rows:
        raise SnapshotCorrupt(f"snapshot {manifest.snapshot_id}: {file.name} does not hold {part.rows} rows")
    return found


def verified(backups: BackupStore, base: str, file: SnapshotFile, snapshot_id: str) -> bytes:
    try:
        data = backups.get(base + file.name)
    except ObjectMissing:
        raise SnapshotCorrupt(f"snapshot {snapshot_id}: {file.name} is missing") from None
    except ObjectUnreadable as exc:
        raise SnapshotCorrupt(f"snapshot {snapshot_id}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != file.size or digest != file.sha256:
        raise SnapshotCorrupt(
            f"snapshot {snapshot_id}: {file.name} does not match its checksum "
            f"(sha256 {digest}, {len(data)} bytes; the manifest says {file.sha256}, {file.size} bytes)"
        )
    return data


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
