"""The projections a query replica serves, one per dataset, built from DeepLake and kept fresh from events.

`apply_events` is the plain handler (the Kafka follower and the embedded bus both call it); `load_dataset` reads a
dataset's latest version from DeepLake. Replaying events over a state that already holds some of them converges
(upserts and deletes by id, metadata as stored), so a replica loads DeepLake *after* noting where the event log
stood and then replays from there.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from events import (
    DatasetCreated,
    DatasetDeleted,
    DomainEvent,
    MetadataUpdated,
    SnapshotRestored,
    VectorsDeleted,
    VectorsUpserted,
)
from events.commands import dense_default, dense_named_vectors
from query_api.projection import DatasetProjection
from query_api.saved_graphs import SavedGraphs
from tributary import tracing
from tributary.metrics import APPLIED_TO_VISIBLE, observe_since
from tributary.storage import DatasetSpec, DatasetStore, named_vectors_of

log = logging.getLogger(__name__)

LOAD_CHUNK = 10_000


@dataclass
class Served:
    spec: DatasetSpec
    projection: DatasetProjection
    # DeepLake's id of the dataset (`DatasetCreatedPayload.dataset_id`): its version ids alone are the same in a
    # dataset created again under its name, and the search cache must tell the two apart.
    dataset_id: str = ""


class Projections:
    def __init__(self, store: DatasetStore | None = None) -> None:
        # Where a restored dataset is loaded from again (SnapshotRestored).
        self.store = store
        self._served: dict[tuple[str, str], Served] = {}
        self._lock = threading.Lock()
        # Held while a batch of events is applied, and while a dataset is rebuilt from DeepLake: events that
        # arrive during a rebuild wait, then apply to the new projection (replaying them converges).
        self.applying = threading.Lock()
        # Set when events were applied: query_api/indexer.py wakes to index what they left pending.
        self.written = threading.Event()

    def get(self, tenant: str, dataset: str) -> Served | None:
        return self._served.get((tenant, dataset))

    def put(self, tenant: str, dataset: str, served: Served) -> None:
        with self._lock:
            self._served[(tenant, dataset)] = served

    def drop(self, tenant: str, dataset: str) -> None:
        with self._lock:
            self._served.pop((tenant, dataset), None)

    def __len__(self) -> int:
        return len(self._served)

    def all(self) -> list[Served]:
        with self._lock:
            return list(self._served.values())

    def named(self) -> list[tuple[tuple[str, str], Served]]:
        """Each projection with its tenant and dataset."""
        with self._lock:
            return list(self._served.items())


def apply_events(projections: Projections, events: Sequence[DomainEvent]) -> None:
    started = time.time_ns()
    with projections.applying:
        _apply_all(projections, events)
    projections.written.set()
    observe_since(APPLIED_TO_VISIBLE, [event.occurred_at for event in events])
    # Each event's trace goes on through this replica: a span per event, timed as the events applied together.
    tracing.each_message("follow", events, start_time=started)


def rebuild(projections: Projections, store: DatasetStore, tenant: str, dataset: str) -> Served | None:
    """Load the dataset again from DeepLake, tune its search breadth, and serve the new projection (None if it
    no longer exists)."""
    with projections.applying:
        served = load_dataset(store, tenant, dataset)
        if served is None:
            projections.drop(tenant, dataset)
            return None
        for space in served.projection.spaces.values():
            space.tune()
        projections.put(tenant, dataset, served)
        return served


def _apply_all(projections: Projections, events: Sequence[DomainEvent]) -> None:
    for event in events:
        match event:
            case DatasetCreated(payload=p):
                if projections.get(event.tenant, event.dataset) is None:
                    spec = DatasetSpec.of(p)
                    projections.put(
                        event.tenant, event.dataset, Served(spec, _projection(spec, p.version), p.dataset_id)
                    )
            case DatasetDeleted():
                projections.drop(event.tenant, event.dataset)
            case SnapshotRestored(payload=p):
                # The dataset's state was replaced: served again from DeepLake at the restore's version, and the
                # events after it apply on top, as after a start.
                if projections.store is None:
                    raise RuntimeError("these projections cannot load a restored dataset: they have no store")
                served = _restored(projections.store, event.tenant, event.dataset, p.version)
                if served is None:
                    projections.drop(event.tenant, event.dataset)
                else:
                    projections.put(event.tenant, event.dataset, served)
            case VectorsUpserted() | VectorsDeleted() | MetadataUpdated():
                served = projections.get(event.tenant, event.dataset)
                if served is None:
                    continue  # an event of a dataset deleted since; its delete follows or came first
                projection = served.projection
                with projection.lock.writing():
                    _apply(served, event)
                    if projection.version == event.payload.version:
                        projection.applied_at_version += 1
                    else:
                        projection.version, projection.applied_at_version = event.payload.version, 1


def _apply(served: Served, event: VectorsUpserted | VectorsDeleted | MetadataUpdated) -> None:
    projection = served.projection
    match event:
        case VectorsUpserted(payload=p):
            named = dense_named_vectors(p.named_vectors, served.spec.vectors, len(p.ids))
            projection.upsert(p.ids, dense_default(p.vectors, p.vector_absent), p.texts, p.metadata, named)
        case VectorsDeleted(payload=p):
            projection.delete(p.ids)
        case MetadataUpdated(payload=p):
            projection.set_metadata(p.id, dict(p.metadata))


def _restored(store: DatasetStore, tenant: str, dataset: str, version: str) -> Served | None:
    try:
        return load_dataset(store, tenant, dataset, at=version)
    except Exception:
        # The dataset was deleted (and perhaps created again) since the restore: the events that say so follow.
        log.warning("%s/%s no longer has the restored version %s", tenant, dataset, version, exc_info=True)
        return None


def load_dataset(
    store: DatasetStore,
    tenant: str,
    dataset: str,
    at: str | None = None,
    index: bool = True,
    saved: SavedGraphs | None = None,
) -> Served | None:
    """The dataset's projection at a version (its latest without one; None if it does not exist). Without
    `index` its vectors stay pending: searched by exact scan, no HNSW built. With `saved`, its graphs saved
    when the replica last stopped are reused where they still hold the rows' vectors, and what they do not hold
    is left pending for the indexer (query_api/saved_graphs.py); without a save it can use, the graphs are
    built from scratch."""
    spec = store.spec(tenant, dataset)
    if spec is None:
        return None
    ds = store.read_at(tenant, dataset, at)
    if saved is not None:
        projection = _projection(spec, str(ds.version))
        try:
            with projection.lock.writing():
                if saved.restore(tenant, dataset, projection, len(ds)):
                    _fill(projection, ds, spec, index=False)
                    projection.settle()
                    log.info("%s/%s: reusing its saved HNSW graphs", tenant, dataset)
                    return Served(spec, projection, str(ds.id))
                log.info("%s/%s has no saved HNSW graphs: building them", tenant, dataset)
        except Exception:
            log.warning(
                "%s/%s: its saved HNSW graphs cannot be used, building them", tenant, dataset, exc_info=True
            )
    projection = _projection(spec, str(ds.version))
    with projection.lock.writing():
        projection.reserve(len(ds))
        _fill(projection, ds, spec, index)
    return Served(spec, projection, str(ds.id))


def _fill(projection: DatasetProjection, ds: Any, spec: DatasetSpec, index: bool) -> None:
    """Upsert every row of `ds` into the projection, a chunk at a time; with `index`, each chunk's pending
    vectors are inserted into HNSW before the next is read."""
    for start in range(0, len(ds), LOAD_CHUNK):
        stop = min(start + LOAD_CHUNK, len(ds))
        ids = [str(i) for i in _column(ds, "id", start, stop)]
        vectors = np.asarray(ds["embedding"][start:stop], dtype=np.float32)
        texts: list[str | None] = [str(t) or None for t in _column(ds, "text", start, stop)]
        metadata: list[dict[str, Any]] = [
            json.loads(str(m)) if m else {} for m in _column(ds, "metadata", start, stop)
        ]
        projection.upsert(ids, vectors, texts, metadata, named_vectors_of(ds, spec, start, stop))
        if index:
            # A chunk at a time: hnswlib is handed a copy of the rows it inserts, and the whole load at once
            # was a second copy of every vector for a moment (1.5 GB at 1M x 384).
            projection.index_pending()


def _projection(spec: DatasetSpec, version: str) -> DatasetProjection:
    """An empty projection of a dataset with this spec."""
    return DatasetProjection(
        spec.dimensions,
        spec.metric,
        version,
        spec.text_field,
        spec.text_analysis,
        spec.index,
        spec.vectors,
    )


def _column(ds: Any, name: str, start: int, stop: int) -> list[Any]:
    return list(ds[name][start:stop])


def load_all(
    projections: Projections,
    store: DatasetStore,
    datasets: Sequence[tuple[str, str]],
    saved: SavedGraphs | None = None,
) -> None:
    """Serve each dataset from its latest DeepLake version (one that no longer exists is skipped), reusing its
    `saved` graphs where it can."""
    for tenant, dataset in datasets:
        served = load_dataset(store, tenant, dataset, saved=saved)
        if served is not None:
            projections.put(tenant, dataset, served)
            log.info(
                "loaded %s/%s: %d records at %s, %d vectors in HNSW and %d pending",
                tenant,
                dataset,
                len(served.projection),
                served.projection.version,
                served.projection.indexed,
                served.projection.pending,
            )


def save_all(projections: Projections, saved: SavedGraphs) -> None:
    """Save the graphs of every projection worth it, for the next start (`load_all`), and forget those of
    datasets deleted since; a failure is logged and skipped."""
    named = projections.named()
    for (tenant, dataset), served in named:
        try:
            if saved.save(tenant, dataset, served.projection):
                log.info("saved the HNSW graphs of %s/%s", tenant, dataset)
        except Exception:
            log.exception("saving the HNSW graphs of %s/%s failed", tenant, dataset)
    try:
        saved.forget_others({name for name, _ in named})
    except Exception:
        log.exception("removing the saved HNSW graphs of deleted datasets failed")
