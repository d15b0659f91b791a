"""A replica's HNSW graphs saved when it stops and reused when it starts (query_api/saved_graphs.py), on DeepLake
in a temp dir: unchanged vectors are not inserted again, rows changed, added and deleted since the save are served
as DeepLake holds them, and a save that cannot be used gives way to a full build with the same answers."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from entrypoints.http_app import create_app
from events import (
    CreateDataset,
    CreateDatasetPayload,
    DeleteDataset,
    DeleteVectors,
    DeleteVectorsPayload,
    UpsertVectors,
    UpsertVectorsPayload,
)
from events.commands import FieldVectors, IndexConfig, VectorField
from query_api.projection import DatasetProjection
from query_api.registry import Projections, Served, load_dataset, save_all
from query_api.saved_graphs import CURRENT, GRAPHS_DIR, LOCK, STATE, SavedGraphs
from tests.helpers import ADMIN_KEY, serving
from tests.kafka_tools import workers
from tributary.settings import Settings
from tributary.storage import DatasetSpec, DatasetStore
from workers.applier import apply_commands

T, D = "acme", "docs"
DIMS, NAMED_DIMS, ROWS = 16, 8, 3000


def vectors(seed: int, rows: int, dims: int = DIMS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dims)).astype(np.float32)


def create(store: DatasetStore, dims: int = DIMS) -> None:
    payload = CreateDatasetPayload(
        dimensions=dims, index=IndexConfig(m=8), vectors={"image": VectorField(dimensions=NAMED_DIMS)}
    )
    apply_commands([CreateDataset(tenant=T, dataset=D, payload=payload)], store)


def upsert(store: DatasetStore, ids: list[str], rows: np.ndarray, named: np.ndarray | None = None) -> None:
    """Every other record also carries the named field `image`."""
    carrying = list(range(0, len(ids), 2))
    image = named if named is not None else vectors(len(ids), len(ids), NAMED_DIMS)
    payload = UpsertVectorsPayload(
        ids=ids,
        vectors=rows,
        named_vectors={"image": FieldVectors(rows=carrying, vectors=image[carrying])},
    )
    apply_commands([UpsertVectors(tenant=T, dataset=D, payload=payload)], store)


def delete(store: DatasetStore, ids: list[str]) -> None:
    apply_commands([DeleteVectors(tenant=T, dataset=D, payload=DeleteVectorsPayload(ids=ids))], store)


def loaded(store: DatasetStore, saved: SavedGraphs | None = None) -> DatasetProjection:
    served = load_dataset(store, T, D, saved=saved)
    assert isinstance(served, Served)
    return served.projection


def top(projection: DatasetProjection, query: np.ndarray, k: int = 10, field: str = "") -> list[str]:
    space = projection.spaces[field] if field else projection.default
    with projection.lock.reading():
        return [projection.id_of(hit.slot) for hit in space.search(query, k, None)]


def exact_top(projection: DatasetProjection, query: np.ndarray, k: int = 10) -> list[str]:
    with projection.lock.reading():
        return [projection.id_of(hit.slot) for hit in projection.default.search(query, k, None, exact=True)]


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    store = DatasetStore(str(tmp_path / "datasets"))
    create(store)
    upsert(store, [f"v{i}" for i in range(ROWS)], vectors(0, ROWS))
    return store


@pytest.fixture
def saved(tmp_path: Path) -> SavedGraphs:
    return SavedGraphs(tmp_path / GRAPHS_DIR, min_vectors=1000)


def test_a_restart_serves_the_saved_graphs_without_inserting_again(
    store: DatasetStore, saved: SavedGraphs
) -> None:
    before = loaded(store)
    assert saved.save(T, D, before)
    after = loaded(store, saved)
    # Nothing left pending, and the load inserted nothing itself (it leaves what changed to the indexer): every
    # vector of both fields is in the saved graphs.
    assert (after.pending, after.indexed) == (0, before.indexed)
    assert after.default.indexed == ROWS and after.spaces["image"].indexed == ROWS // 2
    for query in vectors(1, 20):
        assert top(after, query) == top(before, query)
    for query in vectors(2, 20, NAMED_DIMS):
        assert top(after, query, field="image") == top(before, query, field="image")
    # A fresh build inserts every vector: nothing like a saved graph was used.
    assert loaded(store).indexed == before.indexed


def test_rows_changed_added_and_deleted_since_the_save_are_served_as_deeplake_holds_them(
    store: DatasetStore, saved: SavedGraphs
) -> None:
    assert saved.save(T, D, loaded(store))
    old = vectors(0, ROWS)
    changed = vectors(3, 5)
    upsert(store, ["v0", "v1", "v2", "v3", "v4"], changed)
    added = vectors(4, 10)
    upsert(store, [f"new{i}" for i in range(10)], added)
    deleted = [f"v{i}" for i in range(100, 150)]
    delete(store, deleted)

    after = loaded(store, saved)
    assert len(after) == ROWS + 10 - 50
    # Changed and new vectors wait for the indexer; the others kept their saved entries.
    assert after.default.pending == 5 + 10
    assert after.default.indexed == ROWS - 50 - 5
    for index_now in (False, True):
        if index_now:
            with after.lock.writing():
                after.index_pending()
            assert after.pending == 0
        for i, vector in enumerate(changed):
            assert top(after, vector, 1) == [f"v{i}"]
            # Its old vector is no longer there to be found.
            assert f"v{i}" not in top(after, old[i], 1)
        for i, vector in enumerate(added):
            assert top(after, vector, 1) == [f"new{i}"]
        for i in range(100, 150):
            assert after.slot(f"v{i}") is None
            assert not set(deleted) & set(top(after, old[i], 50))
        for query in vectors(5, 20):
            assert top(after, query, 1) == exact_top(after, query, 1)
    # The deleted ids' slots are free for the next new ids: the slots stay as many as the records.
    with after.lock.writing():
        after.upsert([f"later{i}" for i in range(50)], vectors(10, 50), None, None)
    assert after.default.search(vectors(10, 1)[0], 1, None)
    assert max(after.slot(f"later{i}") or 0 for i in range(50)) < ROWS + 10


def test_a_record_that_no_longer_carries_a_named_field_leaves_its_graph(
    store: DatasetStore, saved: SavedGraphs
) -> None:
    assert saved.save(T, D, loaded(store))
    # What `upsert` gave the even records at first.
    image_before = vectors(ROWS, ROWS, NAMED_DIMS)
    # v0 written again without `image` (an upsert replaces the whole record), v2 with a new one.
    payload = UpsertVectorsPayload(ids=["v0"], vectors=vectors(0, ROWS)[:1])
    apply_commands([UpsertVectors(tenant=T, dataset=D, payload=payload)], store)
    image_now = vectors(6, 1, NAMED_DIMS)
    upsert(store, ["v2"], vectors(0, ROWS)[2:3], named=image_now)
    after = loaded(store, saved)
    image = after.spaces["image"]
    assert (image.pending, image.indexed) == (1, ROWS // 2 - 2)
    assert after.default.pending == 0
    v0 = after.slot("v0")
    assert v0 is not None and not image.carries(v0)
    assert "v0" not in top(after, image_before[0], 10, field="image")
    for index_now in (False, True):
        if index_now:
            with after.lock.writing():
                after.index_pending()
        assert top(after, image_now[0], 1, field="image") == ["v2"]
        assert top(after, image_before[2], 1, field="image") != ["v2"]


def damage_graph(here: Path) -> None:
    graph = next(here.glob("*/0.hnsw"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
    graph.write_bytes(bytes(data))


def truncate_state(here: Path) -> None:
    state = next(here.glob(f"*/{STATE}"))
    state.write_bytes(state.read_bytes()[:100])


def lose_the_save(here: Path) -> None:
    (here / CURRENT).write_text("gone")


@pytest.mark.parametrize("damage", [damage_graph, truncate_state, lose_the_save])
def test_a_damaged_save_gives_way_to_a_full_build(
    store: DatasetStore, saved: SavedGraphs, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    before = loaded(store)
    assert saved.save(T, D, before)
    damage(saved.root / T / D)
    with caplog.at_level(logging.WARNING):
        after = loaded(store, saved)
    assert "cannot be used" in caplog.text
    assert (after.pending, after.indexed) == (0, before.indexed)
    for query in vectors(1, 20):
        assert top(after, query, 1) == exact_top(before, query, 1)


def test_a_save_of_another_spec_gives_way_to_a_full_build(
    store: DatasetStore, saved: SavedGraphs, caplog: pytest.LogCaptureFixture
) -> None:
    assert saved.save(T, D, loaded(store))
    # The dataset deleted and made again, wider, with the same ids.
    apply_commands([DeleteDataset(tenant=T, dataset=D)], store)
    create(store, dims=DIMS * 2)
    wider = vectors(7, ROWS, DIMS * 2)
    upsert(store, [f"v{i}" for i in range(ROWS)], wider)
    with caplog.at_level(logging.WARNING):
        after = loaded(store, saved)
    assert "cannot be used" in caplog.text and "dimensions" in caplog.text
    assert after.default.dimensions == DIMS * 2 and after.pending == 0
    assert top(after, wider[7], 1) == ["v7"]


def test_a_small_projection_is_not_saved(tmp_path: Path, store: DatasetStore) -> None:
    saved = SavedGraphs(tmp_path / GRAPHS_DIR, min_vectors=ROWS * 2)
    assert not saved.save(T, D, loaded(store))
    assert not (saved.root / T / D / CURRENT).exists()
    assert loaded(store, saved).indexed == ROWS + ROWS // 2


def test_a_save_while_another_process_saves_is_left_to_it(store: DatasetStore, saved: SavedGraphs) -> None:
    projection = loaded(store)
    assert saved.save(T, D, projection)
    first = (saved.root / T / D / CURRENT).read_text()
    # Another process holds the lock, as a writer does for the whole of its save.
    descriptor = os.open(saved.root / T / D / LOCK, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        assert not saved.save(T, D, projection)
    finally:
        os.close(descriptor)
    assert (saved.root / T / D / CURRENT).read_text() == first
    # Once it is done, the next save replaces the last, and only the new one is left.
    assert saved.save(T, D, projection)
    here = saved.root / T / D
    assert sorted(entry.name for entry in here.iterdir()) == sorted(
        [CURRENT, LOCK, (here / CURRENT).read_text()]
    )
    assert loaded(store, saved).pending == 0


def test_what_a_killed_or_failed_save_left_is_removed_before_the_next_is_written(
    store: DatasetStore, saved: SavedGraphs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save killed while writing leaves its `.tmp` directory; one that failed after its rename (a full disk at
    `current`) leaves a complete save that `current` does not name. The next save removes both before it writes,
    so that on a full disk it has their room: even when it fails too, they are gone."""
    projection = loaded(store)
    assert saved.save(T, D, projection)
    here = saved.root / T / D
    kept = (here / CURRENT).read_text()
    (here / "a-killed-save.tmp").mkdir()
    (here / "a-killed-save.tmp" / STATE).write_bytes(b"half")
    (here / "never-current").mkdir()
    (here / f"{CURRENT}.x.tmp").write_bytes(b"y")
    assert loaded(store, saved).pending == 0  # the complete save is still the one read

    def full_disk(work: Path, projection: DatasetProjection) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("query_api.saved_graphs._write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        saved.save(T, D, projection)
    assert sorted(entry.name for entry in here.iterdir()) == sorted([CURRENT, LOCK, kept])
    assert loaded(store, saved).pending == 0


async def test_embedded_mode_saves_its_graphs_when_it_stops_and_starts_from_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        wait_timeout_s=20,
        admin_key=ADMIN_KEY,
        graph_save_min_vectors=100,
    )
    rows, queries = vectors(8, 400), vectors(9, 10)
    found: list[list[list[str]]] = []
    for start in ("first", "again"):
        with caplog.at_level(logging.INFO, logger="query_api.registry"):
            async with serving(create_app(settings)) as client:
                if start == "first":
                    created = await client.post(
                        "/api/v1/datasets?wait=true", json={"name": D, "dimensions": DIMS}
                    )
                    assert created.status_code == 200, created.text
                    records = [{"id": f"v{i}", "vector": row.tolist()} for i, row in enumerate(rows)]
                    written = await client.post(
                        f"/api/v1/datasets/{D}/vectors?wait=true", json={"vectors": records}
                    )
                    assert written.status_code == 200, written.text
                    assert await settled(client) == len(rows)
                else:
                    # Served from the saved graph at once: nothing was left to insert.
                    state = (await client.get(f"/api/v1/admin/datasets/{D}/index")).json()
                    assert (state["indexed"], state["pending"]) == (len(rows), 0)
                found.append([await found_ids(client, query) for query in queries])
        if start == "first":
            # Its shutdown saved the graph.
            assert (settings.data_dir / GRAPHS_DIR / settings.default_tenant / D / CURRENT).exists()
            assert "reusing" not in caplog.text
    assert "reusing its saved HNSW graphs" in caplog.text
    assert found[0] == found[1]


async def settled(client: httpx.AsyncClient) -> int:
    """Once nothing is pending: the vectors in HNSW."""
    for _ in range(600):
        state = (await client.get(f"/api/v1/admin/datasets/{D}/index")).json()
        if state["pending"] == 0:
            return int(state["indexed"])
        await asyncio.sleep(0.1)
    raise AssertionError("the indexer never caught up")


async def found_ids(client: httpx.AsyncClient, query: np.ndarray) -> list[str]:
    """The top 5 at a set search breadth (the tuned one is not saved)."""
    answer = await client.post(
        f"/api/v1/datasets/{D}/search", json={"k": 5, "vector": query.tolist(), "ef": 64}
    )
    assert answer.status_code == 200, answer.text
    return [hit["id"] for hit in answer.json()["results"]]


def test_the_saves_of_deleted_datasets_are_forgotten(store: DatasetStore, saved: SavedGraphs) -> None:
    projections = Projections()
    projections.put(T, D, Served(DatasetSpec(DIMS, "cosine"), loaded(store)))
    projections.put(T, "other", Served(DatasetSpec(DIMS, "cosine"), loaded(store)))
    save_all(projections, saved)
    assert (saved.root / T / "other" / CURRENT).exists()
    projections.drop(T, "other")
    save_all(projections, saved)
    # Only the lock file is left of a deleted dataset's save.
    assert [entry.name for entry in (saved.root / T / "other").iterdir()] == [LOCK]
    assert (saved.root / T / D / CURRENT).exists()


def test_saves_and_loads_at_once_never_see_a_save_half_written(
    store: DatasetStore, saved: SavedGraphs, caplog: pytest.LogCaptureFixture
) -> None:
    """As the processes of one role (`--workers N`) do when they stop and start together."""
    projection = loaded(store)
    assert saved.save(T, D, projection)
    stop = threading.Event()

    def keep_saving() -> None:
        while not stop.is_set():
            saved.save(T, D, projection)

    writers = [threading.Thread(target=keep_saving) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="query_api.registry"):
            for _ in range(5):
                assert loaded(store, saved).pending == 0
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert caplog.text.count("reusing its saved HNSW graphs") == 5, caplog.text


async def test_a_query_replica_restarts_from_its_saved_graph_with_the_writes_made_while_it_was_down(
    distributed_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = distributed_settings.model_copy(update={"graph_save_min_vectors": 100})
    rows = vectors(11, 400)
    changed, added = vectors(12, 1)[0], vectors(13, 1)[0]
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await created_with(commands, rows)
        async with serving(create_app(settings, "query-api")) as queries:
            assert await best(queries, rows[7], "strong") == "v7"
            assert await settled(queries) == len(rows)
        assert (settings.data_dir / GRAPHS_DIR / settings.default_tenant / D / CURRENT).exists()
        # While the replica is down: v0 gets a new vector, v1 is deleted, v400 is new.
        body = {
            "vectors": [{"id": "v0", "vector": changed.tolist()}, {"id": "v400", "vector": added.tolist()}]
        }
        assert (await commands.post(f"/api/v1/datasets/{D}/vectors?wait=true", json=body)).status_code == 200
        deleted = await commands.post(f"/api/v1/datasets/{D}/vectors/delete?wait=true", json={"ids": ["v1"]})
        assert deleted.status_code == 200, deleted.text
        with caplog.at_level(logging.INFO, logger="query_api.registry"):
            async with serving(create_app(settings, "query-api")) as queries:
                assert "reusing its saved HNSW graphs" in caplog.text
                for _ in range(2):
                    # Before and after the indexer inserted what changed.
                    assert await best(queries, changed) == "v0"
                    assert await best(queries, added) == "v400"
                    assert await best(queries, rows[1]) != "v1"
                    assert await best(queries, rows[0]) != "v0"
                    assert await best(queries, rows[7]) == "v7"
                    assert await settled(queries) == len(rows)


async def created_with(commands: httpx.AsyncClient, rows: np.ndarray) -> None:
    """The dataset created through the command API, holding `rows` as v0, v1, ..."""
    created = await commands.post("/api/v1/datasets?wait=true", json={"name": D, "dimensions": DIMS})
    assert created.status_code == 200, created.text
    records = [{"id": f"v{i}", "vector": row.tolist()} for i, row in enumerate(rows)]
    written = await commands.post(f"/api/v1/datasets/{D}/vectors?wait=true", json={"vectors": records})
    assert written.status_code == 200, written.text


async def best(client: httpx.AsyncClient, query: np.ndarray, consistency: str = "eventual") -> str:
    """The id of the best match."""
    answer = await client.post(
        f"/api/v1/datasets/{D}/search?consistency={consistency}", json={"k": 1, "vector": query.tolist()}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["results"][0]["id"])


async def test_a_query_replica_whose_start_fails_keeps_every_save(
    distributed_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start that fails before its load is done (DeepLake or Kafka gone a moment, a crash loop) saves nothing
    and removes nothing: the next start still finds the graphs of every dataset."""
    settings = distributed_settings.model_copy(update={"graph_save_min_vectors": 100})
    rows = vectors(14, 400)
    here = settings.data_dir / GRAPHS_DIR / settings.default_tenant / D
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
    ):
        await created_with(commands, rows)
        async with serving(create_app(settings, "query-api")) as queries:
            assert await settled(queries) == len(rows)
        kept = (here / CURRENT).read_text()

        def unreachable(*args: object) -> None:
            raise RuntimeError("DeepLake did not answer")

        monkeypatch.setattr("query_api.follower.load_all", unreachable)
        with pytest.raises(RuntimeError, match="DeepLake did not answer"):
            async with serving(create_app(settings, "query-api")):
                pass
        assert (here / CURRENT).read_text() == kept and (here / kept).is_dir()
