"""One adapter per ANN library, all behind the same small interface, so the benchmark treats them alike.

Ids are our labels (non-negative int64). Every adapter searches one query on the calling thread; bulk adds use
every core. A filter is built once from an allow-list by the library's own mechanism and then handed to searches.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bench.ann_data import Ids, Metric, Vectors, normalised


@dataclass(frozen=True)
class GraphParams:
    """Build settings shared by the three HNSW implementations so that their graphs are comparable."""

    m: int = 16
    ef_construction: int = 128
    ivf_lists: int = 256


class AnnIndex(Protocol):
    name: str
    filter_kind: str

    def add_bulk(self, ids: Ids, vectors: Vectors) -> None: ...
    def wide_filter_efforts(self, k: int, selectivity: float) -> list[int]:
        """Extra efforts for filtered search, where the filter does not by itself widen the search."""
        ...

    def set_effort(self, effort: int) -> None: ...
    def search(self, query: Vectors, k: int) -> Ids: ...
    def make_filter(self, allowed: Ids) -> object: ...
    def filtered_search(self, query: Vectors, k: int, allowed: object) -> Ids: ...
    def delete(self, id_: int) -> None: ...
    def update(self, id_: int, vector: Vectors) -> None: ...
    def insert(self, id_: int, vector: Vectors) -> None: ...


def _packed_bitmap(ids: Ids, size: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    mask = np.zeros(size, bool)
    mask[ids] = True
    return np.packbits(mask, bitorder="little")


class HnswlibIndex:
    name = "hnswlib"
    filter_kind = "filter= callable (Python, per candidate)"

    def __init__(self, dim: int, metric: Metric, capacity: int, params: GraphParams) -> None:
        import hnswlib

        self._index = hnswlib.Index(space=metric, dim=dim)
        # Replacing deleted slots keeps the graph from growing with churn.
        self._index.init_index(
            max_elements=capacity,
            M=params.m,
            ef_construction=params.ef_construction,
            allow_replace_deleted=True,
        )

    def add_bulk(self, ids: Ids, vectors: Vectors) -> None:
        self._index.add_items(vectors, ids, num_threads=-1)

    def wide_filter_efforts(self, k: int, selectivity: float) -> list[int]:
        # A filtered search goes on until it holds ef allowed results, so ef means the same as unfiltered.
        return []

    def set_effort(self, effort: int) -> None:
        self._index.set_ef(effort)

    def search(self, query: Vectors, k: int) -> Ids:
        labels, _ = self._index.knn_query(query, k=k, num_threads=1)
        return np.asarray(labels[0], np.int64)

    def make_filter(self, allowed: Ids) -> object:
        return set(allowed.tolist()).__contains__

    def filtered_search(self, query: Vectors, k: int, allowed: object) -> Ids:
        labels, _ = self._index.knn_query(query, k=k, num_threads=1, filter=allowed)
        return np.asarray(labels[0], np.int64)

    def delete(self, id_: int) -> None:
        self._index.mark_deleted(id_)

    def update(self, id_: int, vector: Vectors) -> None:
        # Adding an existing label rewrites its vector and repairs its links in place.
        self._index.add_items(vector[None], [id_], num_threads=1)

    def insert(self, id_: int, vector: Vectors) -> None:
        self._index.add_items(vector[None], [id_], num_threads=1, replace_deleted=True)


@dataclass(frozen=True)
class _OverFetch:
    allowed: np.ndarray[Any, np.dtype[np.bool_]]
    share: float


class UsearchIndex:
    """usearch's Python API has no predicate, so filtering is post-filtering an over-fetched result."""

    name = "usearch"
    filter_kind = "none in Python API: over-fetch k/selectivity x 2, then drop"
    OVER_FETCH = 2

    def __init__(self, dim: int, metric: Metric, capacity: int, params: GraphParams) -> None:
        from usearch.index import Index

        kinds = {"cosine": "cos", "ip": "ip", "l2": "l2sq"}
        self._index = Index(
            ndim=dim,
            metric=kinds[metric],
            dtype="f32",
            connectivity=params.m,
            expansion_add=params.ef_construction,
        )
        self._capacity = capacity

    def add_bulk(self, ids: Ids, vectors: Vectors) -> None:
        self._index.add(ids, vectors, threads=0)

    def wide_filter_efforts(self, k: int, selectivity: float) -> list[int]:
        # The over-fetched count already sets the beam width.
        return []

    def set_effort(self, effort: int) -> None:
        self._index.expansion_search = effort  # type: ignore[misc]  # usearch has the setter; mypy misses it

    def search(self, query: Vectors, k: int) -> Ids:
        return np.asarray(self._index.search(query, k).keys, np.int64)

    def make_filter(self, allowed: Ids) -> object:
        mask = np.zeros(self._capacity, bool)
        mask[allowed] = True
        return _OverFetch(mask, len(allowed) / max(1, len(self._index)))

    def filtered_search(self, query: Vectors, k: int, allowed: object) -> Ids:
        assert isinstance(allowed, _OverFetch)
        count = math.ceil(k / allowed.share * self.OVER_FETCH)
        keys = np.asarray(self._index.search(query, count).keys, np.int64)
        return keys[allowed.allowed[keys]][:k]

    def delete(self, id_: int) -> None:
        self._index.remove(id_)

    def update(self, id_: int, vector: Vectors) -> None:
        # The Python wrapper refuses duplicate keys, so an update is a remove and an add.
        self._index.remove(id_)
        self._index.add(id_, vector)

    def insert(self, id_: int, vector: Vectors) -> None:
        self._index.add(id_, vector)


class _FaissBase:
    """Shared faiss plumbing: metric mapping, cosine by normalising, one OpenMP thread while searching."""

    def __init__(self, metric: Metric) -> None:
        import faiss

        self._faiss: Any = faiss
        self._metric = metric
        self._faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _prepare(self, vectors: Vectors) -> Vectors:
        if vectors.ndim == 1:
            vectors = vectors[None]
        return normalised(vectors) if self._metric == "cosine" else np.ascontiguousarray(vectors, np.float32)

    def _bulk_threads(self, bulk: bool) -> None:
        self._faiss.omp_set_num_threads((os.cpu_count() or 1) if bulk else 1)


@dataclass(frozen=True)
class _FaissFilter:
    bits: np.ndarray[Any, np.dtype[np.uint8]]  # kept alive: the selector only points at it
    selector: Any


class FaissHnswIndex(_FaissBase):
    """faiss HNSW cannot remove vectors, so deletes are tombstones in a bitmap passed to every search."""

    name = "faiss-hnsw"
    filter_kind = "IDSelectorBitmap in SearchParametersHNSW"

    def __init__(self, dim: int, metric: Metric, capacity: int, params: GraphParams) -> None:
        super().__init__(metric)
        self._index = self._faiss.IndexHNSWFlat(dim, params.m, self._faiss_metric)
        self._index.hnsw.efConstruction = params.ef_construction
        self._ef = 16
        # faiss numbers vectors 0..n-1 in add order; labels map them back, slot maps a label to its live vector.
        # Every update adds a vector, so there is room for one rewrite of each label: ample for the benchmark.
        self._labels = np.full(capacity * 2, -1, np.int64)
        self._slot = np.full(capacity, -1, np.int64)
        self._live = np.zeros(capacity * 2, bool)
        self._buried = 0
        self._tombstones: _FaissFilter | None = None

    def add_bulk(self, ids: Ids, vectors: Vectors) -> None:
        self._bulk_threads(True)
        start = self._index.ntotal
        self._index.add(self._prepare(vectors))
        self._record(ids, np.arange(start, start + len(ids)))
        self._bulk_threads(False)

    def wide_filter_efforts(self, k: int, selectivity: float) -> list[int]:
        # The beam holds efSearch candidates, allowed or not, and the search ends when they are spent: finding
        # k allowed ones takes an efSearch of about k / selectivity.
        return [math.ceil(k / selectivity), math.ceil(4 * k / selectivity)]

    def _record(self, ids: Ids, slots: Ids) -> None:
        self._labels[slots] = ids
        self._slot[ids] = slots
        self._live[slots] = True

    def _bury(self, id_: int) -> None:
        self._live[self._slot[id_]] = False
        self._slot[id_] = -1
        self._buried += 1

    def _bitmap(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> _FaissFilter:
        bits = np.packbits(mask, bitorder="little")
        return _FaissFilter(bits, self._faiss.IDSelectorBitmap(len(mask), self._faiss.swig_ptr(bits)))

    def _refresh(self) -> None:
        """Re-packs the live bitmap after a write, once anything is buried: every search must skip the dead."""
        if self._buried:
            self._tombstones = self._bitmap(self._live)

    def set_effort(self, effort: int) -> None:
        self._ef = effort
        self._index.hnsw.efSearch = effort

    def _search(self, query: Vectors, k: int, selection: _FaissFilter | None) -> Ids:
        params = (
            None
            if selection is None
            else self._faiss.SearchParametersHNSW(sel=selection.selector, efSearch=self._ef)
        )
        _, slots = self._index.search(self._prepare(query), k, params=params)
        found = slots[0][slots[0] >= 0]
        return np.asarray(self._labels[found], np.int64)

    def search(self, query: Vectors, k: int) -> Ids:
        return self._search(query, k, self._tombstones)

    def make_filter(self, allowed: Ids) -> object:
        mask = np.zeros(len(self._live), bool)
        mask[self._slot[allowed]] = True
        return self._bitmap(mask & self._live)

    def filtered_search(self, query: Vectors, k: int, allowed: object) -> Ids:
        assert isinstance(allowed, _FaissFilter)
        return self._search(query, k, allowed)

    def delete(self, id_: int) -> None:
        self._bury(id_)
        self._refresh()

    def update(self, id_: int, vector: Vectors) -> None:
        self._bury(id_)
        self._add_one(id_, vector)
        self._refresh()

    def insert(self, id_: int, vector: Vectors) -> None:
        self._add_one(id_, vector)
        self._refresh()

    def _add_one(self, id_: int, vector: Vectors) -> None:
        slot = self._index.ntotal
        self._index.add(self._prepare(vector))
        self._record(np.array([id_]), np.array([slot]))


class FaissIvfIndex(_FaissBase):
    """faiss IVF-Flat: k-means lists, a search scans nprobe of them; it can remove and update in place."""

    name = "faiss-ivf"
    filter_kind = "IDSelectorBitmap in SearchParametersIVF"
    TRAIN_PER_LIST = 64

    def __init__(self, dim: int, metric: Metric, capacity: int, params: GraphParams) -> None:
        super().__init__(metric)
        faiss = self._faiss
        self._quantizer = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        self._index = faiss.IndexIVFFlat(self._quantizer, dim, params.ivf_lists, self._faiss_metric)
        # A hash table from id to list entry makes remove_ids and update_vectors direct look-ups.
        self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self._capacity = capacity
        self._nprobe = 1

    def add_bulk(self, ids: Ids, vectors: Vectors) -> None:
        self._bulk_threads(True)
        prepared = self._prepare(vectors)
        if not self._index.is_trained:
            size = min(len(prepared), self._index.nlist * self.TRAIN_PER_LIST)
            sample = np.random.default_rng(0).choice(len(prepared), size, replace=False)
            self._index.train(prepared[sample])
        self._index.add_with_ids(prepared, ids)
        self._bulk_threads(False)

    def wide_filter_efforts(self, k: int, selectivity: float) -> list[int]:
        # The allowed neighbours lie further out than the nearest lists: probe a quarter and a half of them.
        return [self._index.nlist // 4, self._index.nlist // 2]

    def set_effort(self, effort: int) -> None:
        self._nprobe = effort
        self._index.nprobe = effort

    def search(self, query: Vectors, k: int) -> Ids:
        _, ids = self._index.search(self._prepare(query), k)
        return np.asarray(ids[0][ids[0] >= 0], np.int64)

    def make_filter(self, allowed: Ids) -> object:
        bits = _packed_bitmap(allowed, self._capacity)
        return _FaissFilter(bits, self._faiss.IDSelectorBitmap(self._capacity, self._faiss.swig_ptr(bits)))

    def filtered_search(self, query: Vectors, k: int, allowed: object) -> Ids:
        assert isinstance(allowed, _FaissFilter)
        params = self._faiss.SearchParametersIVF(sel=allowed.selector, nprobe=self._nprobe)
        _, ids = self._index.search(self._prepare(query), k, params=params)
        return np.asarray(ids[0][ids[0] >= 0], np.int64)

    def delete(self, id_: int) -> None:
        self._index.remove_ids(np.array([id_], np.int64))

    def update(self, id_: int, vector: Vectors) -> None:
        self._index.update_vectors(np.array([id_], np.int64), self._prepare(vector))

    def insert(self, id_: int, vector: Vectors) -> None:
        self._index.add_with_ids(self._prepare(vector), np.array([id_], np.int64))


IndexFactory = Callable[[int, Metric, int, GraphParams], AnnIndex]

# name -> (module that must be importable, adapter, which effort list it takes)
LIBRARIES: dict[str, tuple[str, IndexFactory, str]] = {
    "hnswlib": ("hnswlib", HnswlibIndex, "ef"),
    "usearch": ("usearch", UsearchIndex, "ef"),
    "faiss-hnsw": ("faiss", FaissHnswIndex, "ef"),
    "faiss-ivf": ("faiss", FaissIvfIndex, "nprobe"),
}


def installed(name: str) -> bool:
    return importlib.util.find_spec(LIBRARIES[name][0]) is not None
