"""DeepLake as the write model: one dataset per tenant/dataset under the storage root.

Calls here are synchronous (DeepLake releases the GIL); async callers run them in a worker thread.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from events.analysis import PLAIN_WORDS, TextAnalysis
from events.commands import (
    Command,
    CreateDatasetPayload,
    FieldType,
    IndexConfig,
    LocalEmbedderConfig,
    Metric,
    OpenAIEmbedderConfig,
    VectorField,
    image_fields,
    parse_embedder_config,
)
from events.domain import DatasetCreatedPayload
from events.filters import FilterNode
from tributary.backup_store import BackupStore
from tributary.deeplake_lib import deeplake
from tributary.filtering import matches
from tributary.limits import LEDGER_SIZE

log = logging.getLogger(__name__)

SPEC_KEY = "tributary_spec"
# Redelivery only repeats the newest commands of a partition (those whose offsets were not committed yet, at
# most one applier batch), so a ledger of the last LEDGER_SIZE commands per dataset recognises every one.
# Every commit we make has this prefix and the JSON of a `Commit`: the last LEDGER_SIZE command ids applied, and
# the operations the commit applied (what the versions list names, query_api/past_versions.py).
# Measured here (tests/test_ledger_atomicity.py): SIGKILL during a commit can persist dataset metadata without
# the commit's rows, but a commit message never runs ahead of its data. Older versions lose their messages
# (DeepLake 4.7's compaction drops them), so each message carries the whole ledger; and the
# compacted version, the head until the next commit, has none. An applier that reopens the dataset then finds an
# empty ledger and applies redelivered commands again, which is safe: each command is idempotent on the state
# (upserts and deletes by id, deletes by filter and metadata updates replayed in their original order converge to
# the same rows).
LEDGER_PREFIX = "tributary-apply "


@dataclass(frozen=True)
class Commit:
    """What one of our DeepLake commits applied, carried in its message, atomically with its data."""

    ledger: list[str]
    operations: list[str]

    @property
    def message(self) -> str:
        body = {"ledger": self.ledger[-LEDGER_SIZE:], "operations": self.operations}
        return LEDGER_PREFIX + json.dumps(body, separators=(",", ":"))

    @classmethod
    def parse(cls, message: str) -> Commit:
        """A message of ours, or nothing for DeepLake's own commits (the dataset's creation, its schema)."""
        if not message.startswith(LEDGER_PREFIX):
            return cls([], [])
        body = json.loads(message[len(LEDGER_PREFIX) :])
        if isinstance(body, list):
            # Written before commits named their operations: the ledger alone.
            return cls([str(command_id) for command_id in body], [])
        return cls([str(c) for c in body["ledger"]], [str(o) for o in body["operations"]])


@dataclass(frozen=True)
class VersionRef:
    """A version of one dataset: version ids start again in a dataset created again under the same name, its
    DeepLake id does not."""

    dataset_id: str
    version: str


@dataclass(frozen=True)
class Version:
    """One entry of a dataset's history: a commit, when it was made, the operations it applied and its tags."""

    version: str
    time: datetime
    operations: list[str]
    tags: list[str]


@dataclass(frozen=True)
class DatasetSpec:
    dimensions: int
    metric: Metric
    metadata_schema: dict[str, FieldType] = field(default_factory=dict)
    text_field: str | None = None
    embedder: LocalEmbedderConfig | OpenAIEmbedderConfig | None = None
    text_analysis: TextAnalysis = PLAIN_WORDS
    index: IndexConfig = field(default_factory=IndexConfig)
    # The named vector fields beside the default vector, each stored in its column `vector.<name>`.
    vectors: dict[str, VectorField] = field(default_factory=dict)

    def to_json(self) -> str:
        named = (
            {"vectors": {n: f.model_dump(mode="json") for n, f in self.vectors.items()}}
            if self.vectors
            else {}
        )
        return json.dumps(
            {
                **named,
                "dimensions": self.dimensions,
                "metric": self.metric,
                "metadata_schema": self.metadata_schema,
                "text_field": self.text_field,
                "embedder": self.embedder.model_dump(mode="json") if self.embedder else None,
                "text_analysis": self.text_analysis.model_dump(mode="json"),
                "index": self.index.model_dump(mode="json"),
            },
            sort_keys=True,
        )

    def fields(self) -> dict[str, Any]:
        """The spec as the fields of a payload that carries it (DatasetCreated, SnapshotRestored)."""
        return {
            "dimensions": self.dimensions,
            "metric": self.metric,
            "metadata_schema": dict(self.metadata_schema),
            "text_field": self.text_field,
            "embedder": self.embedder,
            "text_analysis": self.text_analysis,
            "index": self.index,
            "vectors": dict(self.vectors),
        }

    @classmethod
    def of(cls, payload: CreateDatasetPayload | DatasetCreatedPayload) -> DatasetSpec:
        return cls(
            dimensions=payload.dimensions,
            metric=payload.metric,
            metadata_schema=dict(payload.metadata_schema),
            text_field=payload.text_field,
            embedder=payload.embedder,
            text_analysis=payload.text_analysis,
            index=payload.index,
            vectors=dict(payload.vectors),
        )

    @classmethod
    def from_json(cls, raw: str) -> DatasetSpec:
        data = json.loads(raw)
        return cls(
            dimensions=int(data["dimensions"]),
            metric=data["metric"],
            metadata_schema=dict(data.get("metadata_schema") or {}),
            text_field=data.get("text_field"),
            embedder=parse_embedder_config(data["embedder"]) if data.get("embedder") else None,
            # Specs written before analysis was configurable have none: their datasets keep plain words.
            text_analysis=TextAnalysis.model_validate(data.get("text_analysis") or PLAIN_WORDS),
            # Likewise the index: today's graph and target.
            index=IndexConfig.model_validate(data.get("index") or {}),
            # And named vector fields: none.
            vectors={n: VectorField.model_validate(f) for n, f in (data.get("vectors") or {}).items()},
        )


def column_of(name: str) -> str:
    """The DeepLake column of a named vector field."""
    return f"vector.{name}"


def image_column_of(name: str) -> str:
    """The DeepLake column of an image field's images (a named field whose embedder embeds images)."""
    return f"image.{name}"


@dataclass(frozen=True)
class Rows:
    """A dataset's rows as stored, in row order: metadata as its JSON text, each named vector field as a matrix
    with NaN rows where a record does not carry it, each image field's images with empty bytes where a record
    has none."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    texts: list[str]
    metadata: list[str]
    named: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    images: dict[str, list[bytes]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def columns(self, image_columns: Sequence[str] = ()) -> dict[str, Any]:
        """The rows as DeepLake appends them, with each of `image_columns` (the dataset's image fields): empty
        in every row when the rows carry none (a snapshot taken before snapshots held images)."""
        return {
            "id": self.ids,
            "embedding": self.vectors,
            "text": self.texts,
            "metadata": self.metadata,
            **{column_of(name): matrix for name, matrix in self.named.items()},
            **{
                image_column_of(name): self.images.get(name) or [b""] * len(self.ids)
                for name in image_columns
            },
        }


@dataclass(frozen=True)
class Committed:
    version: str
    spec: DatasetSpec
    count: int
    ledger: list[str]


class DatasetStore:
    def __init__(self, root: str, backups: BackupStore | None = None) -> None:
        self.root = root.rstrip("/")
        # Where the applier copies snapshots (tributary/backup_store.py); None in processes that never do.
        self.backups = backups
        self._writers: dict[str, DatasetWriter] = {}

    def writer(self, tenant: str, dataset: str) -> DatasetWriter | None:
        """The open writer of a dataset (None when it does not exist). Callers are the one writer per dataset."""
        url = self.url(tenant, dataset)
        if url not in self._writers:
            if self.spec(tenant, dataset) is None:
                return None
            self._writers[url] = DatasetWriter(url)
        return self._writers[url]

    def forget(self, tenant: str, dataset: str) -> None:
        """Drop a writer after a failed apply, so the next one reopens the dataset at its last commit."""
        writer = self._writers.pop(self.url(tenant, dataset), None)
        if writer is not None:
            writer.discard()

    def forget_all(self) -> None:
        """Drop every writer: after a rebalance another worker may have committed to any of them."""
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.discard()

    def url(self, tenant: str, dataset: str) -> str:
        # Tenant and dataset are validated names (no dots or slashes), so this cannot escape the root.
        return f"{self.root}/{tenant}/{dataset}"

    def exists(self, tenant: str, dataset: str) -> bool:
        return bool(deeplake.exists(self.url(tenant, dataset)))

    def spec(self, tenant: str, dataset: str) -> DatasetSpec | None:
        if not self.exists(tenant, dataset):
            return None
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        if SPEC_KEY not in ds.metadata:
            return None
        return _spec_of(ds)

    def version(self, tenant: str, dataset: str) -> str:
        return str(deeplake.open_read_only(self.url(tenant, dataset)).version)

    def dataset_id(self, tenant: str, dataset: str) -> str:
        """DeepLake's id of the dataset, unique to this creation of it (`DatasetCreatedPayload.dataset_id`)."""
        return str(deeplake.open_read_only(self.url(tenant, dataset)).id)

    def last_commit(self, tenant: str, dataset: str) -> Committed:
        """The dataset's last commit, read only (beside its writer, which may be writing the next)."""
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        version = str(ds.version)
        return Committed(
            version=version,
            spec=_spec_of(ds),
            count=len(ds.history[version].open()),
            ledger=_ledger(ds),
        )

    def read_at(self, tenant: str, dataset: str, at: str | None = None) -> Any:
        """A read-only handle on the dataset at a tag or version id (its latest commit without one)."""
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        if at is None:
            return ds
        # `path@name` names a tag or a branch, not a version id: versions are reached through the history.
        return ds.tags[at].open() if at in ds.tags.names() else ds.history[at].open()

    def version_named(self, tenant: str, dataset: str, names: Sequence[str]) -> VersionRef | None:
        """The version of the first of `names` that is a tag or a version id of the dataset (None if none is,
        or the dataset does not exist)."""
        if not self.exists(tenant, dataset):
            return None
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        tags = set(ds.tags.names())
        ids = {str(v.id) for v in ds.history}
        for name in names:
            if name in tags:
                return VersionRef(str(ds.id), str(ds.tags[name].version))
            if name in ids:
                return VersionRef(str(ds.id), name)
        return None

    def history(self, tenant: str, dataset: str) -> list[Version] | None:
        """The dataset's commits, oldest first (None if it does not exist)."""
        if not self.exists(tenant, dataset):
            return None
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        tagged: dict[str, list[str]] = {}
        for name in ds.tags.names():
            tagged.setdefault(str(ds.tags[name].version), []).append(str(name))
        return [
            Version(
                version=str(v.id),
                # DeepLake's timestamps are naive UTC.
                time=v.timestamp.replace(tzinfo=UTC),
                operations=Commit.parse(str(v.message or "")).operations,
                tags=sorted(tagged.get(str(v.id), [])),
            )
            for v in ds.history
        ]

    def rows_at(self, tenant: str, dataset: str, at: str, start: int, stop: int) -> Rows:
        ds = self.read_at(tenant, dataset, at)
        spec = _spec_of(ds)
        return Rows(
            ids=[str(i) for i in ds["id"][start:stop]],
            vectors=np.asarray(ds["embedding"][start:stop], dtype=np.float32),
            texts=[str(t) for t in ds["text"][start:stop]],
            metadata=[str(m) for m in ds["metadata"][start:stop]],
            named=named_vectors_of(ds, spec, start, stop),
            images={
                name: _bytes_of(ds[image_column_of(name)], start, stop) for name in image_fields(spec.vectors)
            },
        )

    def create_with_rows(
        self, tenant: str, dataset: str, spec: DatasetSpec, parts: Iterable[Rows], commit: Commit
    ) -> None:
        """Create the dataset holding the rows of `parts` (taken one at a time), in one commit whose message is
        `commit`: a crash leaves no dataset or the whole of it (a folder without a committed spec is created
        again, as for a create), and an error while taking the parts leaves no dataset."""
        ds = self._create_schema(tenant, dataset, spec)
        try:
            for rows in parts:
                if len(rows):
                    ds.append(rows.columns(image_fields(spec.vectors)))
        except BaseException:
            self.delete(tenant, dataset)
            raise
        ds.commit(commit.message)

    def create(self, tenant: str, dataset: str, spec: DatasetSpec, commit: Commit) -> str:
        """Create the dataset and commit its schema; returns the committed version. (DeepLake 4.7 keeps its own
        message, "Created initial schema", for that commit: the create's operation is not in the history.)"""
        ds = self._create_schema(tenant, dataset, spec)
        ds.commit(commit.message)
        return str(ds.version)

    def _create_schema(self, tenant: str, dataset: str, spec: DatasetSpec) -> Any:
        # Embeddings are stored as plain float32 arrays: DeepLake's own vector index is not used for
        # serving (see docs/architecture.md), and building it stalls commits near a million rows.
        ds = deeplake.create(
            self.url(tenant, dataset),
            schema={
                "id": deeplake.types.Text(),
                "embedding": deeplake.types.Array("float32", shape=[spec.dimensions]),
                "text": deeplake.types.Text(),
                # JSON text, not DeepLake's Dict type: Dict reads numbers back as numpy arrays, turns ints in
                # lists into floats, and stores null inside a list (and ints beyond 64 bits) as {}.
                "metadata": deeplake.types.Text(),
                # A row that does not carry a named field holds NaN there: DeepLake's append needs a value in
                # every column, and a vector given is always finite.
                **{
                    column_of(name): deeplake.types.Array("float32", shape=[f.dimensions])
                    for name, f in spec.vectors.items()
                },
                # The images as sent (PNG or JPEG), read back with `get_bytes`; empty bytes in a row without
                # one. (The image type decodes pixels of its `sample_compression` alone: JPEGs kept in this PNG
                # column are served as bytes, never decoded by DeepLake.)
                **{
                    image_column_of(name): deeplake.types.Image(sample_compression="png")
                    for name in image_fields(spec.vectors)
                },
            },
        )
        ds.metadata[SPEC_KEY] = spec.to_json()
        return ds

    def images_of(
        self, tenant: str, dataset: str, ids: Sequence[str], fields: Sequence[str], at: str | None = None
    ) -> dict[str, dict[str, bytes]]:
        """The images of `fields` that the records of `ids` carry, by id then field, read from the dataset at a
        version (its last commit without one): one query over the id column, reading only the image bytes asked
        for (never decoded)."""
        if not ids or not fields:
            return {}
        ds = self.read_at(tenant, dataset, at)
        wanted = ", ".join("'" + vector_id.replace("'", "''") + "'" for vector_id in dict.fromkeys(ids))
        columns = ", ".join(f'"{image_column_of(name)}"' for name in fields)
        view = ds.query(f"SELECT id, {columns} WHERE id IN ({wanted})")
        rows = list(range(len(view)))
        listed: list[Any] = view["id"][:]
        found: dict[str, dict[str, bytes]] = {str(vector_id): {} for vector_id in listed}
        for name in fields:
            images = view[image_column_of(name)].get_bytes(rows) if rows else []
            for vector_id, image in zip(found, images, strict=True):
                if image:
                    found[vector_id][name] = bytes(image)
        return found

    def delete(self, tenant: str, dataset: str) -> None:
        self.forget(tenant, dataset)
        if self.exists(tenant, dataset):
            deeplake.delete(self.url(tenant, dataset))


class RowIndex:
    """Where each id's row is, followed through deletes and appends without reading the id column again (a delete
    shifts every later row down). A row keeps the slot it had when indexed or appended; its row is that slot less
    the slots deleted below it."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._slots = {str(vector_id): row for row, vector_id in enumerate(ids)}
        # The slot of the next append: the rows appended and indexed (an id stored twice counts each of its rows).
        self._next = len(ids)
        self._gone: list[int] = []

    def __contains__(self, vector_id: object) -> bool:
        return vector_id in self._slots

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def row(self, vector_id: str) -> int | None:
        slot = self._slots.get(vector_id)
        return None if slot is None else self._row(slot)

    def by_row(self) -> dict[int, str]:
        return {self._row(slot): vector_id for vector_id, slot in self._slots.items()}

    def remove(self, ids: Sequence[str]) -> list[int]:
        """Forget the ids that are present (each once); returns their rows bottom-up, the order to delete them in."""
        slots = sorted(
            {self._slots.pop(vector_id) for vector_id in set(ids) if vector_id in self._slots}, reverse=True
        )
        rows = []
        for slot in slots:
            rows.append(self._row(slot))
            insort(self._gone, slot)
        if len(self._gone) > max(len(self._slots), 1024):
            # Renumbered once the deleted slots outnumber the rows, so the list of them stays short.
            self._slots = {vector_id: self._row(slot) for vector_id, slot in self._slots.items()}
            self._next -= len(self._gone)
            self._gone = []
        return rows

    def add(self, ids: Sequence[str]) -> None:
        """Index ids appended in this order."""
        self._slots.update({vector_id: self._next + n for n, vector_id in enumerate(ids)})
        self._next += len(ids)

    def _row(self, slot: int) -> int:
        return slot - bisect_left(self._gone, slot)


class DatasetWriter:
    """The single writer of one dataset: keeps the id -> row mapping (DeepLake has no primary key) and a ledger
    of the commands applied recently, committed with the data so that a redelivered command is recognised."""

    def __init__(self, url: str) -> None:
        self._ds = deeplake.open(url)
        # What a writer changed and never committed is written to the dataset's head when its handle goes
        # (measured: a fresh open then reads it), and the next commit would carry it: a writer that was dropped
        # without discarding them, or killed, may have left some. The single writer starts from the last commit.
        self._ds.rollback()
        self.spec = _spec_of(self._ds)
        self._ledger = self._read_ledger()
        self._pending: list[str] = []
        self._operations: list[str] = []
        self._known = set(self._ledger)
        self._rows = RowIndex(self._ds["id"][:])  # type: ignore[arg-type]

    def _read_ledger(self) -> list[str]:
        return _ledger(self._ds)

    @property
    def count(self) -> int:
        return len(self._ds)

    @property
    def version(self) -> str:
        return str(self._ds.version)

    @property
    def dataset_id(self) -> str:
        return str(self._ds.id)

    @property
    def ledger(self) -> list[str]:
        """The commands the last commit reflects (the newest last)."""
        return list(self._ledger)

    def tag(self, name: str) -> str:
        """Tag the last commit (again, if a crash left the tag on an earlier one); returns its version."""
        self.untag(name)
        self._ds.tag(name)
        return self.version

    def untag(self, name: str) -> None:
        if name in self._ds.tags.names():
            self._ds.tags[name].delete()

    def replace_all(self, parts: Iterable[Rows]) -> None:
        """Make the rows exactly those of `parts` (taken one at a time), for the next commit: every row is deleted
        and the parts appended (never written in place, see `upsert`), so the change is one commit like any
        other write. An error while taking the parts rolls back every change since the last commit; a rollback
        that fails raises its own error, never the parts' (a rejection would keep this writer, whose next commit
        would carry what the parts wrote), so the apply fails and its writers are dropped."""
        try:
            for row in range(len(self._ds) - 1, -1, -1):
                self._ds.delete(row)
            ids: list[str] = []
            for rows in parts:
                if len(rows):
                    self._ds.append(rows.columns(image_fields(self.spec.vectors)))
                ids += rows.ids
        except BaseException:
            self._ds.rollback()
            raise
        self._rows = RowIndex(ids)

    def already_applied(self, command_id: str) -> bool:
        """Committed before, or applied earlier in the batch that is being built."""
        return command_id in self._known

    def applied(self, command: Command) -> None:
        """Record a command as part of the next commit."""
        command_id = str(command.id)
        self._pending.append(command_id)
        self._known.add(command_id)
        if str(command.operation) not in self._operations:
            self._operations.append(str(command.operation))

    def upsert(
        self,
        ids: list[str],
        vectors: npt.NDArray[np.float32],
        texts: list[str | None] | None,
        metadata: list[dict[str, Any]] | None,
        named: dict[str, npt.NDArray[np.float32]] | None = None,
        images: dict[str, list[bytes]] | None = None,
    ) -> None:
        """Write whole records; `named` holds every named field of the dataset, NaN where a record lacks it, and
        `images` every image field, empty bytes where a record has none."""
        if not ids:
            return
        texts = texts or [None] * len(ids)
        metadata = metadata or [{} for _ in ids]
        # An existing id is deleted and appended again, never overwritten in place: DeepLake 4.7's automatic
        # compaction rewrites an embedding block that had rows updated in place as a flat array, so each of its
        # rows then reads back as one float (docs/architecture.md, "Storage"; tests/test_compaction.py).
        for row in self._rows.remove(ids):
            self._ds.delete(row)
        self._ds.append(
            {
                "id": ids,
                "embedding": vectors,
                "text": [text or "" for text in texts],
                "metadata": [_as_json(m) for m in metadata],
                **{column_of(name): matrix for name, matrix in (named or {}).items()},
                **{image_column_of(name): column for name, column in (images or {}).items()},
            }
        )
        self._rows.add(ids)

    def delete(self, ids: list[str]) -> list[str]:
        """Delete the rows of `ids` that exist; returns those ids."""
        present = [vector_id for vector_id in dict.fromkeys(ids) if vector_id in self._rows]
        for row in self._rows.remove(present):
            self._ds.delete(row)
        return present

    def ids_matching(self, node: FilterNode) -> list[str]:
        """The ids whose metadata matches a filter, read from the dataset (uncommitted changes included)."""
        rows = self._rows.by_row()
        values: list[Any] = self._ds["metadata"][:]  # type: ignore[assignment]
        return [rows[row] for row, value in enumerate(values) if matches(node, _as_dict(value))]

    def metadata_of(self, vector_id: str) -> dict[str, Any] | None:
        row = self._rows.row(vector_id)
        if row is None:
            return None
        return _as_dict(self._ds["metadata"][row])

    def set_metadata(self, vector_id: str, metadata: dict[str, Any]) -> None:
        row = self._rows.row(vector_id)
        if row is None:
            raise KeyError(vector_id)
        self._ds["metadata"][row] = _as_json(metadata)

    def discard(self) -> None:
        """Throw away what was changed since the last commit (see __init__: dropping the handle would not)."""
        try:
            self._ds.rollback()
        except Exception:
            # Storage gone: the next writer's rollback at open discards them instead.
            log.warning("could not discard the uncommitted changes of %s", self._ds.name, exc_info=True)
        self._pending, self._operations = [], []

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def commit(self) -> str:
        """Commit the data of every command recorded since the last commit, with the ledger and their operations
        in the commit message: a crash leaves all of them applied and recorded, or none."""
        commit = Commit([*self._ledger, *self._pending][-LEDGER_SIZE:], self._operations)
        self._ds.commit(commit.message)
        self._ledger, self._pending, self._operations, self._known = commit.ledger, [], [], set(commit.ledger)
        return self.version


def named_vectors_of(ds: Any, spec: DatasetSpec, start: int, stop: int) -> dict[str, npt.NDArray[np.float32]]:
    """Rows start to stop of each named vector field of a dataset opened for reading, NaN where a record does not
    carry the field."""
    return {
        name: np.asarray(ds[column_of(name)][start:stop], dtype=np.float32).reshape(-1, field.dimensions)
        for name, field in spec.vectors.items()
    }


def _spec_of(ds: Any) -> DatasetSpec:
    return DatasetSpec.from_json(str(ds.metadata[SPEC_KEY]))


def _bytes_of(column: Any, start: int, stop: int) -> list[bytes]:
    """The images of rows start to stop as stored (never decoded)."""
    return [bytes(image) for image in column.get_bytes(list(range(start, stop)))] if stop > start else []


def _ledger(ds: Any) -> list[str]:
    """The ledger of the dataset's last commit."""
    return Commit.parse(str(ds.history[ds.version].message or "")).ledger


def _as_json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(json.loads(str(value))) if value else {}
