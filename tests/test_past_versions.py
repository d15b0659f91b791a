"""The projections of past versions (query_api/past_versions.py) on DeepLake in a temp dir: a version is found by
its id, a tag or a snapshot id; it is loaded once and held within the memory budget, least recently read dropped
first; a dataset created again under the same name never answers from the old one's versions. And the history
names each commit's operations, also beside commits written before they did."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from events import CreateDataset, CreateDatasetPayload, DeleteDataset, UpsertVectors, UpsertVectorsPayload
from query_api.past_versions import PastVersions
from tributary.deeplake_lib import deeplake
from tributary.snapshots import tag_of
from tributary.storage import LEDGER_PREFIX, Commit, DatasetStore, VersionRef
from workers.applier import apply_commands

T = "acme"


def upsert(ids: list[str], value: float) -> UpsertVectors:
    vectors = np.full((len(ids), 4), value, dtype=np.float32)
    return UpsertVectors(tenant=T, dataset="docs", payload=UpsertVectorsPayload(ids=ids, vectors=vectors))


def created(store: DatasetStore) -> None:
    apply_commands(
        [CreateDataset(tenant=T, dataset="docs", payload=CreateDatasetPayload(dimensions=4))], store
    )


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    store = DatasetStore(str(tmp_path))
    created(store)
    return store


def written(store: DatasetStore, commits: int) -> list[VersionRef]:
    """The versions of `commits` upserts of one vector each (v0, v1, ...)."""
    refs = []
    for n in range(commits):
        apply_commands([upsert([f"v{n}"], float(n + 1))], store)
        ref = store.version_named(T, "docs", [store.version(T, "docs")])
        assert ref is not None
        refs.append(ref)
    return refs


def ids_at(past: PastVersions, version: str) -> set[str]:
    ref = past.find(T, "docs", version)
    assert ref is not None, version
    served = past.get(T, "docs", ref)
    assert served is not None
    with served.projection.lock.reading():
        found = served.projection.live_slots(None)
        return {served.projection.id_of(int(slot)) for slot in found}


def test_each_version_is_found_by_id_tag_or_snapshot_id_and_the_history_names_its_operations(
    store: DatasetStore,
) -> None:
    first, second = upsert(["a", "b"], 1.0), upsert(["c"], 2.0)
    apply_commands([first], store)
    v1 = store.version(T, "docs")
    apply_commands([second], store)
    writer = store.writer(T, "docs")
    assert writer is not None
    writer.tag(tag_of("snap-1"))
    past = PastVersions(store, budget_bytes=1 << 30)
    assert ids_at(past, v1) == {"a", "b"}
    for name in (store.version(T, "docs"), "snap-1", tag_of("snap-1")):
        assert ids_at(past, name) == {"a", "b", "c"}
    assert past.find(T, "docs", "no-such-version") is None
    assert past.find("other", "docs", v1) is None

    history = past.history(T, "docs")
    assert history is not None
    assert [(v.operations, v.tags) for v in history[-2:]] == [
        ([str(first.operation)], []),
        ([str(second.operation)], [tag_of("snap-1")]),
    ]


def test_the_budget_drops_the_least_recently_read_and_a_version_beyond_it_is_not_kept(
    store: DatasetStore,
) -> None:
    refs = written(store, 3)
    unbounded = PastVersions(store, budget_bytes=1 << 30)
    unbounded.get(T, "docs", refs[0])
    one = unbounded.held_bytes
    # Room for two projections of this size.
    past = PastVersions(store, budget_bytes=2 * one + one // 2)
    first = [past.get(T, "docs", ref) for ref in refs[:2]]
    assert past.get(T, "docs", refs[0]) is first[0]  # held, and now the most recently read
    past.get(T, "docs", refs[2])  # drops refs[1], the least recently read
    assert len(past) == 2
    assert past.get(T, "docs", refs[0]) is first[0]
    again = past.get(T, "docs", refs[1])
    assert again is not None and again is not first[1]  # loaded again
    assert len(again.projection) == 2

    tiny = PastVersions(store, budget_bytes=one // 2)
    served = tiny.get(T, "docs", refs[2])
    assert served is not None and len(served.projection) == 3
    assert len(tiny) == 0 and tiny.held_bytes == 0


def test_a_held_version_is_answered_while_another_one_loads(
    store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = written(store, 2)
    past = PastVersions(store, budget_bytes=1 << 30)
    held = past.get(T, "docs", refs[0])
    entered, release = threading.Event(), threading.Event()
    read_at = store.read_at

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(120)
        return read_at(*args, **kwargs)

    monkeypatch.setattr(store, "read_at", slow)
    loader = threading.Thread(target=past.get, args=(T, "docs", refs[1]))
    loader.start()
    try:
        assert entered.wait(60)
        answered: list[Any] = []
        reader = threading.Thread(target=lambda: answered.append(past.get(T, "docs", refs[0])))
        reader.start()
        reader.join(60)
        assert answered == [held], "a held version waited for another version's load"
    finally:
        release.set()
        loader.join(60)
    assert len(past) == 2


def test_a_dataset_created_again_never_answers_from_the_old_ones_versions(store: DatasetStore) -> None:
    apply_commands([upsert(["old"], 1.0)], store)
    version = store.version(T, "docs")
    past = PastVersions(store, budget_bytes=1 << 30)
    assert ids_at(past, version) == {"old"}
    apply_commands([DeleteDataset(tenant=T, dataset="docs")], store)
    created(store)
    apply_commands([upsert(["new"], 2.0)], store)
    # The same version id in the new dataset: its own rows, not the held ones.
    assert store.version(T, "docs") == version
    assert ids_at(past, version) == {"new"}


def test_a_commit_written_before_commits_named_operations_still_gives_its_ledger(store: DatasetStore) -> None:
    apply_commands([upsert(["a"], 1.0)], store)
    ds = deeplake.open(store.url(T, "docs"))
    ds["text"][0] = "x"
    ds.commit(LEDGER_PREFIX + json.dumps(["old-command"]))
    assert Commit.parse(LEDGER_PREFIX + json.dumps(["old-command"])) == Commit(["old-command"], [])
    writer = DatasetStore(store.root).writer(T, "docs")  # opened after that commit
    assert writer is not None and writer.already_applied("old-command")
    history = store.history(T, "docs")
    assert history is not None and history[-1].operations == []
