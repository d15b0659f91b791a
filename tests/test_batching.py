"""The applier's batches, against DeepLake on a temp dir: one commit per dataset per batch, order kept,
a rejected or crashing command isolated from its neighbours, a duplicate applied once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from events import (
    Command,
    CommandRejected,
    CreateDataset,
    CreateDatasetPayload,
    DeleteVectors,
    DeleteVectorsPayload,
    UpdateMetadata,
    UpdateMetadataPayload,
    UpsertVectors,
    UpsertVectorsPayload,
    VectorsDeleted,
    VectorsUpserted,
)
from tributary.deeplake_lib import deeplake
from tributary.storage import Commit, DatasetStore, DatasetWriter
from workers.applier import apply_commands
from workers.isolation import apply_batch


def upsert(dataset: str, *ids: str, dims: int = 2) -> UpsertVectors:
    vectors = np.arange(len(ids) * dims, dtype=np.float32).reshape(len(ids), dims)
    return UpsertVectors(
        tenant="t", dataset=dataset, payload=UpsertVectorsPayload(ids=list(ids), vectors=vectors)
    )


def ids_in(store: DatasetStore, dataset: str) -> list[str]:
    ds = deeplake.open_read_only(store.url("t", dataset))  # the column needs its dataset alive
    return [str(i) for i in ds["id"][:]]


def apply_commits(store: DatasetStore, dataset: str) -> list[list[str]]:
    """The ledger each apply commit recorded (a create's commit records none)."""
    history = deeplake.open_read_only(store.url("t", dataset)).history
    return [commit.ledger for v in history if (commit := Commit.parse(v.message)).ledger]


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    store = DatasetStore(str(tmp_path))
    creates: list[Command] = [
        CreateDataset(tenant="t", dataset=name, payload=CreateDatasetPayload(dimensions=2)) for name in "ab"
    ]
    apply_commands(creates, store)
    return store


def test_a_batch_is_one_commit_per_dataset_and_keeps_order(store: DatasetStore) -> None:
    first = upsert("a", "x", "y")
    batch: list[Command] = [
        first,
        upsert("b", "x"),
        upsert("a", "z", dims=3),  # wrong dimensions: rejected, its neighbours applied
        DeleteVectors(tenant="t", dataset="a", payload=DeleteVectorsPayload(ids=["x"])),
        UpdateMetadata(tenant="t", dataset="a", payload=UpdateMetadataPayload(id="y", metadata={"k": 1})),
        first,  # the same command twice in one batch (a producer retry) is applied once
        UpdateMetadata(tenant="t", dataset="a", payload=UpdateMetadataPayload(id="y", metadata={"j": 2})),
    ]
    events = apply_commands(batch, store)

    assert [type(e).__name__ for e in events] == [
        "VectorsUpserted",
        "VectorsUpserted",
        "CommandRejected",
        "VectorsDeleted",
        "MetadataUpdated",
        "VectorsUpserted",
        "MetadataUpdated",
    ]
    assert [e.causation_id for e in events] == [c.id for c in batch]
    assert events[0].id == events[5].id, "a duplicate announces the same event"
    # Each metadata event carries the metadata as that command left it, not as the batch ended.
    assert events[4].payload.metadata == {"k": 1}  # type: ignore[union-attr]
    assert events[6].payload.metadata == {"k": 1, "j": 2}  # type: ignore[union-attr]
    assert isinstance(events[3], VectorsDeleted) and events[3].payload.ids == ["x"]
    assert apply_commits(store, "a") == [[str(c.id) for c in (batch[0], batch[3], batch[4], batch[6])]]
    assert len(apply_commits(store, "b")) == 1
    assert ids_in(store, "a") == ["y"]
    ds = deeplake.open_read_only(store.url("t", "a"))
    assert {e.payload.version for e in events if isinstance(e, VectorsUpserted) and e.dataset == "a"} == {
        str(ds.version)
    }


class CrashOn(DatasetStore):
    """A store whose writers crash on one vector id, standing in for a bug the applier must survive."""

    def __init__(self, root: str, poison: str) -> None:
        super().__init__(root)
        self.poison = poison

    def writer(self, tenant: str, dataset: str) -> DatasetWriter | None:
        writer = super().writer(tenant, dataset)
        if writer is not None and not isinstance(writer.upsert, _Crashing):
            writer.upsert = _Crashing(writer.upsert, self.poison)  # type: ignore[method-assign]
        return writer


class _Crashing:
    def __init__(self, upsert: object, poison: str) -> None:
        self.upsert, self.poison = upsert, poison

    def __call__(self, ids: list[str], *args: object) -> None:
        if self.poison in ids:
            raise RuntimeError("boom")
        self.upsert(ids, *args)  # type: ignore[operator]


def test_a_crashing_command_is_isolated_and_its_neighbours_applied(store: DatasetStore) -> None:
    crashing = CrashOn(store.root, poison="bad")
    batch: list[Command] = [upsert("a", "p"), upsert("a", "bad"), upsert("b", "q")]
    outcome = apply_batch(batch, crashing, give_up=False)

    assert [index for index, _ in outcome.poisoned] == [1]
    assert "RuntimeError: boom" in outcome.poisoned[0][1]
    assert [type(e) for e in outcome.events] == [VectorsUpserted, CommandRejected, VectorsUpserted]
    assert ids_in(store, "a") == ["p"]
    assert ids_in(store, "b") == ["q"]


def test_when_every_command_crashes_the_batch_is_retried_not_dead_lettered(store: DatasetStore) -> None:
    crashing = CrashOn(store.root, poison="bad")
    batch: list[Command] = [upsert("a", "bad"), upsert("b", "bad")]
    with pytest.raises(RuntimeError):
        apply_batch(batch, crashing, give_up=False)
    with pytest.raises(RuntimeError):
        apply_batch(batch[:1], crashing, give_up=False)
    # After the retries, the commands go to the dead letters and the partition moves on.
    outcome = apply_batch(batch, crashing, give_up=True)
    assert [index for index, _ in outcome.poisoned] == [0, 1]
    assert len(deeplake.open_read_only(store.url("t", "a"))) == 0
