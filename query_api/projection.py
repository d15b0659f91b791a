"""The search projection of one dataset, held in memory by each query replica: for each vector field (the default
vector, and each named field of the dataset) a `VectorSpace` (an HNSW index (hnswlib) over the field's vectors,
the vectors themselves for exact scans and `include`), and, shared by the fields, columnar metadata for filters
and the texts. A record that does not carry a named field is absent from that field's space alone.

Rows live in slots, which are also the HNSW labels and the metadata rows: a deleted id leaves its slot free (a
tombstone in both), and a later new id reuses it. A filter is a mask over the slots (the metadata columns'), and
a filtered search takes the cheaper of two routes (query_api/filtered.py, measured by bench/filtered.py): scan
the allowed rows exactly, or search HNSW unfiltered for enough neighbours that k should pass the mask, then drop
the others.

Indexing is off the visibility path: an upsert stores the vector and marks its slot pending, and a search scans
the pending slots exactly beside the HNSW search of the indexed ones, so a write is searchable as soon as its
event is applied. `index_pending` inserts pending slots into HNSW (query_api/indexer.py calls it in the
background, a chunk at a time; loading from DeepLake calls it at once, unless the load reuses a graph saved
when the replica last stopped: `place`, `adopt` and `settle`, query_api/saved_graphs.py). A replaced vector's old
HNSW entry is marked deleted at once, so it is never found.

The HNSW graph (M, ef_construction) is the field's (`IndexConfig`, chosen at creation); the search breadth
`ef` is tuned by each replica to the field's target recall (query_api/tuning.py, `tune`), and a search may
override it or ask for an exact scan.

Thread safety: searches run in worker threads and share a readers-writer lock; applying events and indexing take
it exclusively (hnswlib's add is not safe alongside its search). `ef` is a setting of the whole index: searches
pass through an `EfGate`, so that all those running at once use the same.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import hnswlib
import numpy as np
import numpy.typing as npt

from events.analysis import PLAIN_WORDS, TextAnalysis, analyzer_for
from events.commands import DEFAULT_VECTOR_FIELD, IndexConfig, Metric, VectorField
from events.filters import FilterNode
from query_api.filtered import Route, oversampled, route
from query_api.sizes import deep_size
from query_api.text_index import TextIndex
from query_api.tuning import (
    SAMPLE,
    TUNING_K,
    EfGate,
    Tuning,
    exact_top_k,
    recall_at_k,
    sample_queries,
    smallest_ef,
)
from tributary.metadata_columns import MetadataColumns, mask

Vectors = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
Fingerprints = npt.NDArray[np.uint64]

# The search breadth until the first tuning: recall@10 >= 0.95 at 100k x 384 (bench/ann.py: 0.968 at ef 32 on
# clustered data; 0.981 at this one on real MiniLM embeddings).
UNTUNED_EF = 100
_SPACES = {"cosine": "cosine", "dot": "ip", "l2": "l2"}
_INITIAL_CAPACITY = 1024
# Inserting is the most expensive thing a replica does (about 0.3 ms a new vector, one thread, 384 dimensions at
# 100,000; 1.4 ms to replace one): a load from DeepLake inserts on every core, as searches wait for it anyway.
_PARALLEL_INSERT_ROWS = 32
INSERT_THREADS = os.cpu_count() or 1
# Rows an exact scan gathers at once (384 KiB at 384 dimensions): the fastest of 64 to 4,096 at 1-30% of 100,000.
GATHER_BLOCK = 256
# Rows fingerprinted at once: 30 MB of 64-bit words at 384 dimensions.
FINGERPRINT_BLOCK = 10_000
# splitmix64's multipliers (Steele, Lea and Flood): a word's bits all reach every bit of its mix.
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


class ReadWriteLock:
    """Many readers or one writer. Writers wait for readers to drain; new readers wait for a waiting writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Hit:
    slot: int
    score: float


class VectorSpace:
    """One vector field of a projection (the default vector, or a named field): its vectors by slot, their HNSW
    index, the slots waiting to be indexed and the tuning of its search breadth. A slot whose record does not
    carry the field is simply absent from it. The projection's lock guards it."""

    def __init__(
        self, dimensions: int, metric: Metric, index: IndexConfig | None, lock: ReadWriteLock
    ) -> None:
        self.dimensions = dimensions
        self.metric = metric
        self.lock = lock
        self.config = index or IndexConfig()
        self._index = hnswlib.Index(space=_SPACES[metric], dim=dimensions)
        self._index.init_index(
            max_elements=_INITIAL_CAPACITY, M=self.config.m, ef_construction=self.config.ef_construction
        )
        # The last tuning of `ef` (query_api/tuning.py); until the first, UNTUNED_EF.
        self.tuning = Tuning(ef=UNTUNED_EF, target=self.config.target_recall)
        self._ef_gate = EfGate(self._index.set_ef, UNTUNED_EF)
        # The last query vectors searched through HNSW: the sample the next tuning measures recall on.
        self._recent: deque[Vectors] = deque(maxlen=SAMPLE)
        # Slots that carry a vector here; those whose current vector is live in HNSW; and the carried slots
        # waiting to be inserted (in write order).
        self._present = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._count = 0
        # One past the highest slot ever stored: the rows exact scans and tunings look at.
        self._extent = 0
        self._in_index = np.zeros(_INITIAL_CAPACITY, dtype=bool)
        self._pending: dict[int, None] = {}
        self._vectors: Vectors = np.zeros((_INITIAL_CAPACITY, dimensions), dtype=np.float32)
        self._norms = np.zeros(_INITIAL_CAPACITY, dtype=np.float32)
        # While a load adopts a saved graph: the fingerprint of the vector its entry holds, by slot (`adopt`).
        self._saved: Fingerprints | None = None

    # -- writes (callers hold `lock.writing()`) -------------------------------------------------------------

    def put(self, slots: npt.NDArray[np.int64], vectors: Vectors) -> None:
        """Store the slots' vectors (a row of NaN: the record does not carry this field) and mark them pending."""
        vectors = np.asarray(vectors, dtype=np.float32)
        carried = np.asarray(~np.isnan(vectors).any(axis=1), dtype=np.bool_)
        held = self._held(slots, vectors, carried)
        self._unindex(slots[~held])
        self.remove(slots[~carried])
        fresh = slots[carried & ~held]
        slots, vectors = slots[carried], vectors[carried]
        if len(slots):
            self._extent = max(self._extent, int(slots.max()) + 1)
        self._count += int(np.count_nonzero(~self._present[slots]))
        self._present[slots] = True
        self._vectors[slots] = vectors
        self._norms[slots] = np.linalg.norm(vectors, axis=1)
        self._pending.update(dict.fromkeys(fresh.tolist()))

    def _held(self, slots: npt.NDArray[np.int64], vectors: Vectors, carried: Bools) -> Bools:
        """Which of the slots' new vectors HNSW holds already: while a saved graph is adopted, those whose
        entry is live and was saved with the same vector's fingerprint; else none."""
        held = np.zeros(len(slots), dtype=bool)
        if self._saved is None or len(np.unique(slots)) < len(slots):
            # A slot written twice at once (no command repeats an id): written as without a saved graph.
            return held
        live = carried & self._in_index[slots]
        held[live] = self._saved[slots[live]] == fingerprints(vectors[live])
        return held

    @property
    def built_with(self) -> dict[str, Any]:
        """What a saved graph must have been built with to serve this field (query_api/saved_graphs.py)."""
        return {
            "dimensions": self.dimensions,
            "metric": self.metric,
            "m": self.config.m,
            "ef_construction": self.config.ef_construction,
        }

    def adopt(self, path: str, indexed: Bools, saved: Fingerprints) -> None:
        """Serve the HNSW graph saved at `path` (query_api/saved_graphs.py), whose labels are this projection's
        slots as placed (`DatasetProjection.place`), with room for the reserved slots: `indexed`, the slots
        live in it, and `saved`, the fingerprints of the vectors it holds for them. Until `settle`, a `put`
        keeps a live entry whose fingerprint its new vector matches, and marks any other deleted."""
        if len(indexed) > len(self._norms):
            raise ValueError(f"a saved graph of {len(indexed)} slots, room for {len(self._norms)}")
        index = hnswlib.Index(space=_SPACES[self.metric], dim=self.dimensions)
        index.load_index(path, max_elements=len(self._norms))
        self._index = index
        self._ef_gate = EfGate(index.set_ef, self.tuning.ef)
        self._in_index[: len(indexed)] = indexed
        self._saved = np.zeros(len(self._norms), dtype=np.uint64)
        self._saved[: len(saved)] = saved

    def settle(self) -> None:
        """The end of a load over an adopted graph: later writes replace entries as usual."""
        self._saved = None

    def save(self, path: str) -> tuple[Bools, Fingerprints]:
        """Write the HNSW graph to `path` (hnswlib's format); the slots live in it, and the fingerprints of the
        vectors it holds for them (0 for the others). Callers hold `lock.reading()`."""
        self._index.save_index(path)
        indexed = self._in_index[: self._extent].copy()
        saved = np.zeros(self._extent, dtype=np.uint64)
        for start in range(0, self._extent, FINGERPRINT_BLOCK):
            stop = min(start + FINGERPRINT_BLOCK, self._extent)
            live = np.flatnonzero(indexed[start:stop]) + start
            saved[live] = fingerprints(self._vectors[live])
        return indexed, saved

    def remove(self, slots: npt.NDArray[np.int64]) -> None:
        self._unindex(slots)
        for slot in slots.tolist():
            self._pending.pop(slot, None)
        self._count -= int(np.count_nonzero(self._present[slots]))
        self._present[slots] = False

    def index_pending(self, limit: int | None = None, threads: int | None = None) -> int:
        """Insert up to `limit` pending slots (all when None) into HNSW, oldest first, on `threads` (every core
        for a batch worth splitting when None); how many were inserted."""
        chosen = list(itertools.islice(self._pending, limit))
        if not chosen:
            return 0
        slots = np.asarray(chosen, dtype=np.int64)
        if threads is None:
            threads = INSERT_THREADS if len(slots) >= _PARALLEL_INSERT_ROWS else 1
        if int(slots.max()) >= self._index.get_max_elements():
            # HNSW grows when rows are indexed, not stored: a projection that is only scanned (a past version,
            # query_api/past_versions.py) never pays for a graph.
            self._index.resize_index(len(self._norms))
        try:
            # Adding a deleted label replaces its vector and makes it live again.
            self._index.add_items(self._vectors[slots], slots, num_threads=threads)
        except Exception:
            # Some may be in: take them all out again, so none is both live in HNSW and pending.
            for slot in chosen:
                with contextlib.suppress(RuntimeError):
                    self._index.mark_deleted(slot)
            raise
        self._in_index[slots] = True
        for slot in chosen:
            del self._pending[slot]
        return len(chosen)

    def _unindex(self, slots: npt.NDArray[np.int64]) -> None:
        for slot in slots[self._in_index[slots]].tolist():
            self._index.mark_deleted(slot)
        self._in_index[slots] = False

    def reserve(self, capacity: int) -> None:
        """Room for `capacity` slots (the projection's capacity)."""
        if capacity <= len(self._norms):
            return
        self._vectors, self._norms, self._in_index, self._present = (
            _grown(self._vectors, capacity),
            _grown(self._norms, capacity),
            _grown(self._in_index, capacity),
            _grown(self._present, capacity),
        )
        if self._saved is not None:
            self._saved = _grown(self._saved, capacity)

    # -- reads (callers hold `lock.reading()`) --------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def carries(self, slot: int) -> bool:
        return bool(self._present[slot])

    @property
    def pending(self) -> int:
        """Vectors not in HNSW yet (searched by exact scan meanwhile)."""
        return len(self._pending)

    @property
    def indexed(self) -> int:
        """Live vectors in HNSW."""
        return self._count - len(self._pending)

    @property
    def recent_searches(self) -> int:
        """Query vectors kept for the next tuning (at most SAMPLE)."""
        return len(self._recent)

    @property
    def memory_bytes(self) -> int:
        """An estimate of the memory the vectors take: the arrays held here, and hnswlib's for each slot of its
        capacity (`hnsw_bytes`)."""
        return self.scan_bytes + hnsw_bytes(
            int(self._index.get_max_elements()), self.dimensions, self.config.m
        )

    @property
    def scan_bytes(self) -> int:
        """The arrays held here: the vectors exact scans read, their norms, and which slots are carried and live in
        HNSW."""
        return self._vectors.nbytes + self._norms.nbytes + self._in_index.nbytes + self._present.nbytes

    @property
    def stored_bytes(self) -> int:
        """`scan_bytes` of the rows ever stored: the capacity beyond them is allocated but never written, so it
        takes no resident memory."""
        return self.scan_bytes * self._extent // len(self._norms)

    def vector(self, slot: int) -> Vectors:
        return np.array(self._vectors[slot], dtype=np.float32)

    def live_slots(self, allowed: Bools | None) -> npt.NDArray[np.int64]:
        """The slots that carry this field, among the allowed ones."""
        if allowed is None:
            return np.flatnonzero(self._present)
        return np.flatnonzero(allowed & self._present[: len(allowed)])

    def search(
        self,
        query: Vectors,
        k: int,
        allowed: Bools | None,
        ef: int | None = None,
        exact: bool = False,
        by: Route | None = None,
    ) -> list[Hit]:
        """The k best rows for `query` among the allowed ones that carry this field, best first. Scores: cosine
        similarity, dot product, or Euclidean distance for l2 (ascending). `exact`: every allowed row is scanned
        (recall 1); `ef`: the HNSW search breadth instead of the tuned one; `by`: a filtered search's route
        instead of the cheaper one (query_api/filtered.py; for benches and tests)."""
        if k <= 0 or not self._count:
            return []
        query = np.asarray(query, dtype=np.float32)
        if exact:
            return self._exact(query, self.live_slots(allowed), k)
        self._recent.append(query)
        indexed = self.indexed
        if allowed is None:
            # hnswlib fails when it finds fewer than k, so it is asked for no more than it holds.
            found = self._hnsw(query, min(k, indexed), ef, allowed)
        else:
            here = allowed & self._present[: len(allowed)]
            allowed_indexed = int(np.count_nonzero(allowed & self._in_index[: len(allowed)]))
            candidates = oversampled(k, allowed_indexed, indexed)
            if (by or route(int(np.count_nonzero(here)), candidates, indexed)) == "exact":
                return self._exact(query, np.flatnonzero(here), k)
            found = self._hnsw(query, candidates, ef, allowed)
            # Fewer than k passed, and HNSW did not see every allowed row: some may lie beyond what it returned.
            if found is not None and len(found) < min(k, allowed_indexed) and candidates < indexed:
                found = None
        if found is None:
            return self._exact(query, self.live_slots(allowed), k)
        hits = found[:k]
        if not self._pending:
            return hits
        pending = np.fromiter(self._pending, dtype=np.int64, count=len(self._pending))
        if allowed is not None:
            pending = pending[allowed[pending]]
        hits += self._exact(query, pending, k)
        if self.metric == "l2":
            return sorted(hits, key=lambda hit: hit.score)[:k]
        return sorted(hits, key=lambda hit: -hit.score)[:k]

    def _hnsw(self, query: Vectors, k: int, ef: int | None, allowed: Bools | None) -> list[Hit] | None:
        """HNSW's k nearest indexed rows, best first, less those `allowed` drops; None when hnswlib finds fewer
        than k (many deleted entries around the query)."""
        if k == 0:
            return []
        # The tuned breadth was measured for the top 10; a longer list gets twice its length, as before tuning.
        length = 2 * k if ef is None else k
        if allowed is not None:
            # A post-filtered list's length varies with the filter: rounded up to a power of two, so that searches
            # asking for similar ones share the EfGate.
            length = 1 << (length - 1).bit_length()
        with self._ef_gate.at(max(self.tuning.ef if ef is None else ef, length)):
            try:
                labels, distances = self._index.knn_query(query, k=k, num_threads=1)
            except RuntimeError:
                return None
        slots, found = labels[0], distances[0].astype(np.float64)
        if allowed is not None:
            keep = allowed[slots]
            slots, found = slots[keep], found[keep]
        scores = np.sqrt(np.maximum(found, 0.0)) if self.metric == "l2" else 1.0 - found
        return [Hit(int(slot), float(score)) for slot, score in zip(slots, scores, strict=True)]

    def tune(self, seed: int = 0) -> Tuning:
        """Measure recall@10 of the indexed rows against exact search at increasing `ef` and keep the smallest
        that reaches the target (query_api/tuning.py), on the last SAMPLE searches or, before there were that
        many, on queries made from rows. Callers hold no lock: it takes the read lock for the exact answers,
        then again for each breadth tried, so events are applied in between."""
        with self.lock.reading():
            rows = self._vectors[: self._extent]
            indexed = self._in_index[: self._extent].copy()
            count = int(np.count_nonzero(indexed))
            recent = list(self._recent)
            on_searches = len(recent) >= SAMPLE
            queries = np.stack(recent) if on_searches else sample_queries(rows, indexed, self.metric, seed)
            truth = exact_top_k(rows, indexed, queries, TUNING_K, self.metric)

        def measure(ef: int) -> float:
            with self.lock.reading(), self._ef_gate.at(max(ef, truth.shape[1])):
                try:
                    labels, _ = self._index.knn_query(queries, k=truth.shape[1], num_threads=1)
                except RuntimeError:
                    # Rows deleted since the exact answers: fewer than k left around some query.
                    return 0.0
            return recall_at_k(labels, truth)

        found = smallest_ef(measure, self.config.target_recall)
        self.tuning = Tuning(found.ef, found.recall, count, found.target, on_searches)
        return self.tuning

    def _exact(self, query: Vectors, slots: npt.NDArray[np.int64], k: int) -> list[Hit]:
        if len(slots) == 0:
            return []
        extent = self._extent
        if 2 * len(slots) > extent:
            # Most rows: rank the rows in place rather than gather a copy of them (150 MB at 100k x 384).
            ascending = self._rank(query, self._vectors[:extent], self._norms[:extent])[slots]
        else:
            ascending = self._rank_products(query, self._gathered_products(query, slots), self._norms[slots])
        best = np.argpartition(ascending, k - 1)[:k] if len(slots) > k else np.arange(len(slots))
        chosen = slots[best]
        if self.metric == "l2":
            # The distances themselves, not their expansion (which loses precision near zero).
            scores = np.linalg.norm(self._vectors[chosen] - query, axis=1)
            ascending_best = scores
        else:
            scores = -ascending[best]
            ascending_best = ascending[best]
        # Best first; equal scores in slot order, as a stable sort of them all would give.
        order = np.lexsort((best, ascending_best))
        return [Hit(int(chosen[i]), float(scores[i])) for i in order]

    def _rank(self, query: Vectors, rows: Vectors, norms: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return self._rank_products(query, rows @ query, norms)

    def _gathered_products(self, query: Vectors, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The rows' products with the query, gathered a block at a time: a block stays in the CPU's cache while
        it is multiplied, where one copy of every row goes out to memory and back (5,000 of 100,000 rows x 384:
        1.0 to 0.62 ms). Only calls into numpy's C code in the loop: a filtered search makes no Python call per
        block either."""
        products = np.empty(len(slots), dtype=np.float32)
        for start in range(0, len(slots), GATHER_BLOCK):
            np.matmul(
                self._vectors[slots[start : start + GATHER_BLOCK]],
                query,
                out=products[start : start + GATHER_BLOCK],
            )
        return products

    def _rank_products(
        self, query: Vectors, products: npt.NDArray[np.float32], norms: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float64]:
        """Lower is closer: -cosine similarity, -dot product, or |r|² - 2 r·q (|r - q|² less |q|²), which
        needs no copy of the rows."""
        product = np.asarray(products, dtype=np.float64)
        if self.metric == "l2":
            return np.asarray(norms, dtype=np.float64) ** 2 - 2 * product
        if self.metric == "cosine":
            product = product / np.maximum(norms * np.linalg.norm(query), 1e-30)
        return -product


def fingerprints(rows: Vectors) -> Fingerprints:
    """A 64-bit hash of each row's float32 bytes, alike in every process: each 8-byte word mixed with its
    position (splitmix64's finalizer), the mixes summed, and the sum mixed again. Two different rows share one
    by chance alone (about 2^-64), so a saved HNSW entry is reused only for the vector it was built from."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.shape[1] % 2:
        rows = np.hstack([rows, np.zeros((len(rows), 1), dtype=np.float32)])
    words = rows.view(np.uint64) ^ _mixed(np.arange(1, rows.shape[1] // 2 + 1, dtype=np.uint64))
    return _mixed(_mixed(words).sum(axis=1, dtype=np.uint64))


def _mixed(x: Fingerprints) -> Fingerprints:
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX[0]
    x ^= x >> np.uint64(27)
    x *= _MIX[1]
    x ^= x >> np.uint64(31)
    return x


def hnsw_bytes(elements: int, dimensions: int, m: int) -> int:
    """What hnswlib (0.8) allocates for an index of `elements` slots of float32 vectors with M = `m`, read from
    its hnswalg.h: at level 0, the vector, 2·M links of 4 bytes and their count, the 8-byte label; per slot, a
    pointer to its upper levels, its level (4 bytes), a std::mutex (40) and an entry of the label map (about
    40); and the upper levels, which a slot reaches with probability 1/M each, M links and their count each."""
    level0 = dimensions * 4 + 2 * m * 4 + 4 + 8
    per_slot = 8 + 4 + 40 + 40
    upper = (m * 4 + 4) / (m - 1)
    return int(elements * (level0 + per_slot + upper))


def _packed(metadata: dict[str, Any]) -> bytes | None:
    return pickle.dumps(metadata, protocol=pickle.HIGHEST_PROTOCOL) if metadata else None


def _grown(array: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    """`array` with room for `capacity` rows, zeros after its own."""
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class DatasetProjection:
    def __init__(
        self,
        dimensions: int,
        metric: Metric,
        version: str = "",
        text_field: str | None = None,
        text_analysis: TextAnalysis = PLAIN_WORDS,
        index: IndexConfig | None = None,
        vectors: Mapping[str, VectorField] | None = None,
    ) -> None:
        # BM25 indexes a record's text, and also the metadata field the dataset names for full-text search.
        self.text_field = text_field
        # BM25 and the filter operator $match analyse texts alike.
        self.analyzer = analyzer_for(text_analysis)
        self.version = version
        # Events applied at `version` (the events of one commit share it): part of the cache key.
        self.applied_at_version = 0
        self.lock = ReadWriteLock()
        # The default vector first, then the dataset's named fields.
        self.spaces: dict[str, VectorSpace] = {
            DEFAULT_VECTOR_FIELD: VectorSpace(dimensions, metric, index, self.lock)
        }
        for name, field in (vectors or {}).items():
            self.spaces[name] = VectorSpace(field.dimensions, field.metric, field.index, self.lock)
        self.default = self.spaces[DEFAULT_VECTOR_FIELD]
        self._capacity = _INITIAL_CAPACITY
        self._ids: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._texts: list[str | None] = []
        # Each row's metadata pickled (None when empty), read back only for the rows a read returns: a million
        # small dicts took 360 bytes a row (their keys are not shared), pickled about 80 (filters read `columns`,
        # never these). Pickle, as these bytes never leave this process, and it loads faster than JSON.
        self._metadata: list[bytes | None] = []
        self.columns = MetadataColumns()
        self._text_index = TextIndex(analyzer=self.analyzer)

    @property
    def tuning_key(self) -> str:
        """Every field's tuned breadth: part of the search cache key, so that a tuning is not hidden by answers
        found before it."""
        return ".".join(str(space.tuning.ef) for space in self.spaces.values())

    # -- writes (callers hold `lock.writing()`) -------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Vectors,
        texts: Sequence[str | None] | None,
        metadata: Sequence[dict[str, Any]] | None,
        named: Mapping[str, Vectors] | None = None,
    ) -> None:
        """Write whole records. `named`: a named field's vectors, NaN in the rows of records that do not carry
        it; a field not given is carried by none of them."""
        texts = texts if texts is not None else [None] * len(ids)
        metadata = metadata if metadata is not None else [{} for _ in ids]
        slots = np.empty(len(ids), dtype=np.int64)
        fresh: list[int] = []
        for i, vector_id in enumerate(ids):
            slot = self._slot_of.get(vector_id)
            if slot is None and self._free:
                slot = self._free.pop()
                self._claim(slot, vector_id)
            if slot is None:
                fresh.append(i)
                continue
            slots[i] = slot
            self.columns.replace(slot, metadata[i])
            self._texts[slot], self._metadata[slot] = texts[i], _packed(metadata[i])
        if fresh:
            new = self.columns.append([metadata[i] for i in fresh])
            for i, slot in zip(fresh, new, strict=True):
                slots[i] = slot
                self._ids.append(ids[i])
                self._slot_of[ids[i]] = slot
                self._texts.append(texts[i])
                self._metadata.append(_packed(metadata[i]))
        self.reserve(len(self._ids))
        for name, space in self.spaces.items():
            if space is self.default:
                space.put(slots, vectors)
            elif named is not None and name in named:
                space.put(slots, named[name])
            else:
                space.remove(slots)
        self._text_index.set_many(slots, [self._searchable(texts[i], metadata[i]) for i in range(len(ids))])

    def delete(self, ids: Sequence[str]) -> None:
        slots = [slot for vector_id in ids if (slot := self._slot_of.pop(vector_id, None)) is not None]
        for space in self.spaces.values():
            space.remove(np.asarray(slots, dtype=np.int64))
        for slot in slots:
            self._text_index.delete(slot)
            self._ids[slot] = self._texts[slot] = self._metadata[slot] = None
            self._free.append(slot)
        self.columns.delete(slots)

    def index_pending(self, limit: int | None = None, threads: int | None = None) -> int:
        """Insert up to `limit` pending slots (all when None) of the fields into HNSW, the default vector's
        first, each oldest first, on `threads` (every core for a batch worth splitting when None); how many
        were inserted."""
        done = 0
        for space in self.spaces.values():
            if limit is not None and done >= limit:
                break
            done += space.index_pending(None if limit is None else limit - done, threads)
        return done

    def place(self, ids: Sequence[str | None]) -> None:
        """Before a load into this empty projection: hold each id at the slot it had when a graph was saved
        (None: a free slot), so that the saved graph's labels name the same records. A placed id is no row
        until the load upserts it; `settle` deletes those it did not."""
        if self._ids:
            raise RuntimeError("ids are placed in an empty projection")
        self.reserve(len(ids))
        self.columns.delete(self.columns.append([{}] * len(ids)))
        self._ids = list(ids)
        self._slot_of = {vector_id: slot for slot, vector_id in enumerate(ids) if vector_id is not None}
        # Popped from the end: new ids take the lowest free slots first.
        self._free = [slot for slot, vector_id in enumerate(ids) if vector_id is None][::-1]
        self._texts = [None] * len(ids)
        self._metadata = [None] * len(ids)

    def settle(self) -> None:
        """The end of a load over placed ids and adopted graphs: the ids it did not bring back are deleted
        (their HNSW entries with them), and writes replace HNSW entries as usual again."""
        held = np.fromiter(
            (vector_id is not None for vector_id in self._ids), dtype=bool, count=len(self._ids)
        )
        gone = np.flatnonzero(held & ~self.columns.live[: len(held)])
        self.delete([self.id_of(int(slot)) for slot in gone])
        for space in self.spaces.values():
            space.settle()

    def set_metadata(self, vector_id: str, metadata: dict[str, Any]) -> None:
        slot = self._slot_of.get(vector_id)
        if slot is not None:
            self.columns.replace(slot, metadata)
            self._metadata[slot] = _packed(metadata)
            if self.text_field is not None:
                self._text_index.set(slot, self._searchable(self._texts[slot], metadata))

    def _searchable(self, text: str | None, metadata: dict[str, Any]) -> str | None:
        field = metadata.get(self.text_field) if self.text_field is not None else None
        parts = [part for part in (text, field) if isinstance(part, str) and part]
        return " ".join(parts) or None

    def _claim(self, slot: int, vector_id: str) -> None:
        self._ids[slot] = vector_id
        self._slot_of[vector_id] = slot

    def reserve(self, size: int) -> None:
        """Room for `size` rows, so a load that knows its size copies the arrays once, not at each doubling."""
        if size <= self._capacity:
            return
        self._capacity = max(size, self._capacity * 2)
        for space in self.spaces.values():
            space.reserve(self._capacity)

    # -- reads (callers hold `lock.reading()`) --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def capacity(self) -> int:
        """Slots the arrays have room for."""
        return self._capacity

    @property
    def slot_ids(self) -> list[str | None]:
        """The id each slot holds (None: free), for a saved graph."""
        return list(self._ids)

    @property
    def pending(self) -> int:
        """Live vectors of every field not in HNSW yet (searched by exact scan meanwhile)."""
        return sum(space.pending for space in self.spaces.values())

    @property
    def indexed(self) -> int:
        """Live vectors of every field in HNSW."""
        return sum(space.indexed for space in self.spaces.values())

    @property
    def memory_bytes(self) -> int:
        """An estimate of the memory the vectors of every field take (VectorSpace.memory_bytes). Ids, texts,
        metadata and the text index are not counted: `memory` counts them, at the cost of a walk over them."""
        return sum(space.memory_bytes for space in self.spaces.values())

    def memory(self) -> dict[str, int]:
        """What each structure takes, in bytes: each field's scan arrays and HNSW (as if every carried vector
        were indexed: `hnsw_bytes`), and the deep size of the ids, texts, metadata, metadata columns and text
        index (every object reached counted once; bench/scale.py prints them)."""
        parts: dict[str, int] = {}
        for name, space in self.spaces.items():
            parts[f"{name}: scan copy"] = space.stored_bytes
            parts[f"{name}: HNSW"] = hnsw_bytes(len(space), space.dimensions, space.config.m)
        seen: set[int] = set()
        parts["ids"] = deep_size([self._ids, self._slot_of, self._free], seen)
        parts["texts"] = deep_size(self._texts, seen)
        parts["metadata"] = deep_size(self._metadata, seen)
        parts["metadata columns"] = deep_size(self.columns, seen)
        parts["text index"] = deep_size(self._text_index, seen)
        return parts

    def slot(self, vector_id: str) -> int | None:
        return self._slot_of.get(vector_id)

    def id_of(self, slot: int) -> str:
        vector_id = self._ids[slot]
        if vector_id is None:
            raise KeyError(slot)
        return vector_id

    def vector(self, slot: int) -> Vectors | None:
        """The record's default vector; None when it has none (it carries named fields only)."""
        return self.default.vector(slot) if self.default.carries(slot) else None

    def named_vectors(self, slot: int) -> dict[str, Vectors]:
        """The named fields the slot's record carries, with their vectors."""
        return {
            name: space.vector(slot)
            for name, space in self.spaces.items()
            if space is not self.default and space.carries(slot)
        }

    def text(self, slot: int) -> str | None:
        return self._texts[slot]

    def metadata(self, slot: int) -> dict[str, Any]:
        packed = self._metadata[slot]
        return {} if packed is None else cast(dict[str, Any], pickle.loads(packed))

    def allowed(self, node: FilterNode | None) -> Bools | None:
        """The slots a filter keeps, or None for no filter."""
        return None if node is None else mask(node, self.columns)

    def live_slots(self, allowed: Bools | None) -> npt.NDArray[np.int64]:
        live = self.columns.live if allowed is None else allowed
        return np.flatnonzero(live)

    def text_search(self, query: str, k: int, allowed: Bools | None) -> list[Hit]:
        """BM25 over the texts, best first; only rows sharing a word with the query."""
        slots, scores = self._text_index.search(query, k, allowed)
        return [Hit(int(slot), float(score)) for slot, score in zip(slots, scores, strict=True)]
