"""Snapshots and restores applied by the applier's handlers, on DeepLake in a temp dir and a backup folder (and
S3Proxy, sealed): what a snapshot holds, retention, idempotent redelivery, and corrupt snapshots refused before
anything changes."""

from __future__ import annotations

import gc
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from events import (
    Command,
    CommandRejected,
    CreateDataset,
    CreateDatasetPayload,
    CreateSnapshot,
    CreateSnapshotPayload,
    DeleteSnapshot,
    DeleteSnapshotPayload,
    DeleteVectors,
    DeleteVectorsPayload,
    DomainEvent,
    RestoreSnapshot,
    RestoreSnapshotPayload,
    SnapshotCreated,
    SnapshotDeleted,
    SnapshotRestored,
    UpsertVectors,
    UpsertVectorsPayload,
)
from tests.services import S3Service
from tributary.backup_store import BackupStore, FolderStore, S3Store, SealedStore
from tributary.snapshots import get_manifest, list_manifests
from tributary.storage import DatasetStore, DatasetWriter
from workers.applier import apply_commands

T = "acme"


def create(dataset: str = "docs", dims: int = 4) -> CreateDataset:
    return CreateDataset(tenant=T, dataset=dataset, payload=CreateDatasetPayload(dimensions=dims))


def upsert(ids: list[str], value: float, dataset: str = "docs") -> UpsertVectors:
    vectors = np.full((len(ids), 4), value, dtype=np.float32)
    metadata: list[dict[str, Any]] = [{"v": value} for _ in ids]
    return UpsertVectors(
        tenant=T, dataset=dataset, payload=UpsertVectorsPayload(ids=ids, vectors=vectors, metadata=metadata)
    )


def snapshot(**retention: Any) -> CreateSnapshot:
    return CreateSnapshot(tenant=T, dataset="docs", payload=CreateSnapshotPayload(**retention))


def restore(snapshot_id: str, into: str = "docs") -> RestoreSnapshot:
    return RestoreSnapshot(
        tenant=T, dataset=into, payload=RestoreSnapshotPayload(source_dataset="docs", snapshot_id=snapshot_id)
    )


def rows(store: DatasetStore, dataset: str = "docs") -> dict[str, tuple[list[float], dict[str, Any]]]:
    ds = store.read_at(T, dataset)
    return {
        str(i): (list(np.asarray(e, dtype=float)), json.loads(str(m)))
        for i, e, m in zip(ds["id"][:], ds["embedding"][:], ds["metadata"][:], strict=True)
    }


def one(events: list[DomainEvent], kind: type[Any]) -> Any:
    (found,) = [e for e in events if isinstance(e, kind)]
    return found


@pytest.fixture(params=["folder", "s3-sealed"])
def backups(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> BackupStore:
    if request.param == "folder":
        return FolderStore(tmp_path / "backups")
    s3: S3Service = request.getfixturevalue("s3_service")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
    return SealedStore(S3Store(s3.bucket, f"{run_id}/backups", s3.endpoint, "us-east-1"), os.urandom(32))


@pytest.fixture
def store(tmp_path: Path, backups: BackupStore) -> DatasetStore:
    return DatasetStore(str(tmp_path / "datasets"), backups=backups)


def apply(store: DatasetStore, *commands: Command) -> list[DomainEvent]:
    events = apply_commands(list(commands), store)
    rejected = [e.payload.reason for e in events if isinstance(e, CommandRejected)]
    assert not rejected, rejected
    return events


def test_a_snapshot_holds_the_commands_before_it_and_restores_over_later_writes(store: DatasetStore) -> None:
    apply(store, create(), upsert(["a", "b"], 1.0))
    taking = snapshot()
    # The writes before the snapshot in the same batch are in it; the ones after are not.
    events = apply(store, upsert(["c"], 2.0), taking, upsert(["a", "d"], 3.0))
    created = one(events, SnapshotCreated)
    assert created.payload.snapshot_id == str(taking.id) and created.payload.vector_count == 3
    at_snapshot = {"a": ([1.0] * 4, {"v": 1.0}), "b": ([1.0] * 4, {"v": 1.0}), "c": ([2.0] * 4, {"v": 2.0})}
    assert rows(store) == at_snapshot | {"d": ([3.0] * 4, {"v": 3.0}), "a": ([3.0] * 4, {"v": 3.0})}
    # The DeepLake version is tagged, and the manifest says what the copy holds.
    assert store.read_at(T, "docs", f"snapshot-{taking.id!s}").version == created.payload.version
    manifest = get_manifest(store.backups, T, "docs", str(taking.id))  # type: ignore[arg-type]
    assert (
        manifest is not None
        and manifest.vector_count == 3
        and manifest.ledger[-1] == str(events[0].causation_id)
    )
    assert manifest.command_id == str(taking.id) and len(manifest.parts) == 1

    batch = [upsert(["e"], 4.0), restore(str(taking.id)), upsert(["f"], 5.0)]
    events = apply(store, *batch)
    restored = one(events, SnapshotRestored)
    assert restored.payload.vector_count == 3 and restored.payload.snapshot_version == created.payload.version
    # Nothing written before the restore survives it; what came after applies on top.
    assert rows(store) == at_snapshot | {"f": ([5.0] * 4, {"v": 5.0})}
    # Redelivered (same batch again): recognised by the ledger, announced again with the same ids, not reapplied.
    store.forget_all()
    again = apply(store, *batch)
    assert [e.id for e in again] == [e.id for e in events]
    assert rows(store) == at_snapshot | {"f": ([5.0] * 4, {"v": 5.0})}


def test_a_snapshot_restores_into_a_new_dataset_and_the_original_keeps_its_later_writes(
    store: DatasetStore,
) -> None:
    taking = snapshot()
    apply(
        store,
        create(),
        upsert(["a", "b"], 1.0),
        taking,
        DeleteVectors(tenant=T, dataset="docs", payload=DeleteVectorsPayload(ids=["a"])),
    )
    events = apply(store, restore(str(taking.id), into="copy"))
    assert one(events, SnapshotRestored).payload.vector_count == 2
    assert rows(store, "copy") == {"a": ([1.0] * 4, {"v": 1.0}), "b": ([1.0] * 4, {"v": 1.0})}
    assert set(rows(store)) == {"b"}
    refused = apply_commands([restore(str(taking.id), into="copy")], store)
    assert isinstance(refused[0], CommandRejected) and refused[0].payload.cause == "conflict"


def test_a_corrupt_snapshot_is_refused_with_the_reason_and_changes_nothing(
    store: DatasetStore, backups: BackupStore
) -> None:
    taking = snapshot()
    apply(store, create(), upsert(["a"], 1.0), taking, upsert(["b"], 2.0))
    plain = backups._inner if isinstance(backups, SealedStore) else backups
    key = f"{T}/docs/{taking.id!s}/vectors-00000.npy"
    flipped = bytearray(plain.get(key))
    flipped[-1] ^= 1  # one byte
    plain.put(key, bytes(flipped))
    refused_over_and_into_a_new_name(store, taking, "vectors-00000.npy")


def refused_over_and_into_a_new_name(store: DatasetStore, taking: CreateSnapshot, bad: str) -> None:
    """Restoring `taking` over its dataset, and into a new name, is refused naming the object `bad`, and leaves the
    dataset as it was and no new one."""
    before, version = rows(store), store.version(T, "docs")
    for target in ("docs", "copy"):
        (event,) = apply_commands([restore(str(taking.id), into=target)], store)
        assert isinstance(event, CommandRejected), event
        assert bad in event.payload.reason and "nothing was restored" in event.payload.reason
    assert rows(store) == before and store.version(T, "docs") == version
    assert not store.exists(T, "copy")


def a_bad_third_part(
    store: DatasetStore, backups: BackupStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[CreateSnapshot, dict[str, tuple[list[float], dict[str, Any]]]]:
    """A snapshot of five rows in parts of two whose third part is bad, a write after it, and the rows then."""
    monkeypatch.setattr("tributary.snapshots.PART_ROWS", 2)
    taking = snapshot()
    apply(store, create(), upsert(["a", "b", "c", "d", "e"], 1.0), taking, upsert(["f"], 2.0))
    plain = backups._inner if isinstance(backups, SealedStore) else backups
    key = f"{T}/docs/{taking.id!s}/records-00002.json"
    plain.put(key, plain.get(key)[:-1])
    return taking, rows(store)


def test_a_bad_part_after_good_ones_undoes_what_the_restore_wrote_from_them(
    store: DatasetStore, backups: BackupStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore writes a part at a time: the parts before a bad one were written already, and must go."""
    taking, before = a_bad_third_part(store, backups, monkeypatch)
    refused_over_and_into_a_new_name(store, taking, "records-00002.json")
    apply(store, upsert(["g"], 3.0))  # the dataset's writer goes on from its last commit
    assert set(rows(store)) == {*before, "g"}


class RollbackFails:
    """A DeepLake dataset whose rollback fails (its storage gone a moment), in all else the dataset."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def rollback(self) -> None:
        raise RuntimeError("storage gone")


def test_a_bad_restore_whose_rollback_fails_fails_the_apply_and_leaves_nothing_for_the_next_commit(
    store: DatasetStore, backups: BackupStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rejecting the restore would keep the writer, and the next write's commit would carry the parts it wrote:
    the apply fails instead (the pipeline retries it), dropping the writer, and the next one starts from the
    last commit."""
    taking, before = a_bad_third_part(store, backups, monkeypatch)
    writer = store.writer(T, "docs")
    assert writer is not None
    writer._ds = RollbackFails(writer._ds)
    with pytest.raises(RuntimeError, match="storage gone"):
        apply_commands([restore(str(taking.id))], store)
    del writer
    gc.collect()  # the dropped writer's handle goes, as it would in the process that retries
    apply(store, upsert(["g"], 3.0))
    assert set(rows(store)) == {*before, "g"}


def test_retention_keeps_the_last_n_and_delete_removes_a_snapshot(store: DatasetStore) -> None:
    apply(store, create(), upsert(["a"], 1.0))
    taken = [snapshot() for _ in range(3)]
    apply(store, *taken)
    newest = snapshot(keep_last=2)
    created = one(apply(store, newest), SnapshotCreated)
    assert created.payload.pruned == sorted([str(taken[0].id), str(taken[1].id)])
    assert [m.snapshot_id for m in list_manifests(store.backups, T, "docs")] == [  # type: ignore[arg-type]
        str(taken[2].id),
        str(newest.id),
    ]
    assert f"snapshot-{taken[0].id!s}" not in store.read_at(T, "docs").tags.names()
    deleting = DeleteSnapshot(
        tenant=T, dataset="docs", payload=DeleteSnapshotPayload(snapshot_id=str(taken[2].id))
    )
    assert isinstance(apply(store, deleting)[0], SnapshotDeleted)
    assert isinstance(apply(store, deleting)[0], SnapshotDeleted)  # again: nothing left to delete, no error
    assert [m.snapshot_id for m in list_manifests(store.backups, T, "docs")] == [str(newest.id)]  # type: ignore[arg-type]
    assert store.backups.keys(f"{T}/docs/{taken[2].id!s}/") == []  # type: ignore[union-attr]


def test_a_snapshot_of_a_missing_dataset_or_a_missing_snapshot_is_not_found(store: DatasetStore) -> None:
    (missing,) = apply_commands([snapshot()], store)
    assert isinstance(missing, CommandRejected) and missing.payload.cause == "not_found"
    (unknown,) = apply_commands([restore("00000000-0000-0000-0000-000000000000")], store)
    assert isinstance(unknown, CommandRejected) and unknown.payload.cause == "not_found"


class FailingOnce:
    """A backup store that fails one chosen write, as a store that goes away in the middle of a copy would."""

    def __init__(self, inner: BackupStore, fail_on: str) -> None:
        self.inner, self.fail_on, self.failed = inner, fail_on, False

    def put(self, key: str, data: bytes) -> None:
        if key.endswith(self.fail_on) and not self.failed:
            self.failed = True
            raise ConnectionError("the store went away")
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def keys(self, prefix: str) -> list[str]:
        return self.inner.keys(prefix)

    def delete(self, keys: list[str]) -> None:
        self.inner.delete(keys)

    def describe(self) -> str:
        return self.inner.describe()


def test_a_copy_that_stops_half_way_is_never_listed_and_the_redelivery_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tributary.snapshots.PART_ROWS", 2)
    backups = FailingOnce(FolderStore(tmp_path / "backups"), fail_on="records-00001.json")
    store = DatasetStore(str(tmp_path / "datasets"), backups=backups)
    apply(store, create(), upsert(["a", "b", "c", "d", "e"], 1.0))
    taking = snapshot()
    with pytest.raises(ConnectionError):
        apply_commands([taking], store)
    assert backups.keys(f"{T}/docs/") != []  # the first part was copied...
    assert list_manifests(backups, T, "docs") == []  # ...but no snapshot exists without its manifest
    created = one(apply(store, taking), SnapshotCreated)  # the command comes again
    (manifest,) = list_manifests(backups, T, "docs")
    assert manifest.snapshot_id == created.payload.snapshot_id and manifest.vector_count == 5
    assert [part.rows for part in manifest.parts] == [2, 2, 1]
    apply(store, restore(str(taking.id), into="copy"))
    assert set(rows(store, "copy")) == {"a", "b", "c", "d", "e"}


def test_a_restore_that_fails_at_its_commit_leaves_the_dataset_as_it_was_and_completes_when_retried(
    store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taking = snapshot()
    apply(store, create(), upsert(["a"], 1.0), taking, upsert(["b"], 2.0))
    before = rows(store)
    batch = [restore(str(taking.id)), upsert(["c"], 3.0)]
    original = DatasetWriter.commit

    def crash(self: DatasetWriter) -> str:
        monkeypatch.setattr(DatasetWriter, "commit", original)
        raise RuntimeError("killed during the commit")

    monkeypatch.setattr(DatasetWriter, "commit", crash)
    with pytest.raises(RuntimeError):
        apply_commands(batch, store)
    assert rows(store) == before  # nothing of the restore was committed
    apply(store, *batch)
    assert set(rows(store)) == {"a", "c"}


def test_retention_by_age_deletes_the_snapshots_older_than_that(store: DatasetStore) -> None:
    apply(store, create(), upsert(["a"], 1.0))
    old, recent = snapshot(), snapshot()
    apply(store, old, recent)
    backups = store.backups
    assert backups is not None
    manifest = get_manifest(backups, T, "docs", str(old.id))
    assert manifest is not None
    aged = manifest.model_copy(update={"created_at": manifest.created_at - timedelta(days=10)})
    backups.put(f"{T}/docs/{old.id}/manifest.json", aged.model_dump_json().encode())
    newest = snapshot(max_age_days=5)
    assert one(apply(store, newest), SnapshotCreated).payload.pruned == [str(old.id)]
    assert [m.snapshot_id for m in list_manifests(backups, T, "docs")] == [str(recent.id), str(newest.id)]
