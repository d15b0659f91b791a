"""Reads at a past version (`version` on search, get, scroll and count): the dataset's projection at that
version, loaded read-only from DeepLake on the first read and held for the next ones.

A past projection is loaded without HNSW (building it at 100,000 vectors takes far longer than a scan), so its
searches are exact scans; filters, text and hybrid search work on it as on the live one. The projections are
held in least-recently-read order within `past_versions_memory_bytes` (tributary/settings.py): beyond it the
least recently read are dropped, and a version larger than the whole budget is served once and not kept.
Loads run one at a time, so two first reads of one version load it once and the memory a burst of first reads
takes is bounded by one load; a read of a held version never waits for them."""

from __future__ import annotations

import threading
from collections import OrderedDict

from query_api.registry import Served, load_dataset
from tributary.snapshots import tag_of
from tributary.storage import DatasetStore, Version, VersionRef

Key = tuple[str, str, VersionRef]


class PastVersions:
    def __init__(self, store: DatasetStore, budget_bytes: int) -> None:
        self._store = store
        self._budget = budget_bytes
        self._held: OrderedDict[Key, Served] = OrderedDict()
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def find(self, tenant: str, dataset: str, version: str) -> VersionRef | None:
        """The version a client named: a DeepLake version id, a tag, or a snapshot id (its tag)."""
        return self._store.version_named(tenant, dataset, [version, tag_of(version)])

    def history(self, tenant: str, dataset: str) -> list[Version] | None:
        """The versions a read may name, oldest first (None if the dataset does not exist). Blocking."""
        return self._store.history(tenant, dataset)

    def get(self, tenant: str, dataset: str, ref: VersionRef) -> Served | None:
        """The projection at `ref`, loaded on the first read (None if the dataset is gone since `find`).
        Blocking: callers run it in a thread."""
        key = (tenant, dataset, ref)
        served = self._held_one(key)
        if served is not None:
            return served
        with self._loading:
            # Loaded meanwhile by the read this one waited for?
            served = self._held_one(key)
            if served is not None:
                return served
            served = load_dataset(self._store, tenant, dataset, at=ref.version, index=False)
            if served is None:
                return None
            with self._lock:
                self._held[key] = served
                self._evict()
            return served

    def _held_one(self, key: Key) -> Served | None:
        with self._lock:
            served = self._held.get(key)
            if served is not None:
                self._held.move_to_end(key)
            return served

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(served.projection.memory_bytes for served in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def _evict(self) -> None:
        total = sum(served.projection.memory_bytes for served in self._held.values())
        while self._held and total > self._budget:
            _, dropped = self._held.popitem(last=False)
            total -= dropped.projection.memory_bytes
