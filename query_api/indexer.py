"""Inserts the vectors that events left pending into each projection's HNSW, in a background thread.

A write is searchable as soon as its event is applied (pending slots are scanned exactly, query_api/projection.py);
this thread makes it cheap to find again. It takes a projection's write lock for about `CHUNK_S` at a time,
inserting small batches until that time is up (a new vector takes about 0.3 ms, a replaced one 1.4 ms, and
other datasets have other dimensions), and pauses between turns, so searches and events get the lock in
between: under a burst of writes the pending set grows and searches scan more rows exactly, instead of the
writes waiting for HNSW. A small backlog is indexed on one core, leaving the
others to the event loop and searches; a large one (a bulk load) on every core, as its exact scans cost more.

When a vector field of a projection has nothing left to index and its index was never tuned, or doubled since it last was, or was
tuned before the replica had seen enough searches to measure on, the thread tunes its search breadth `ef` to the
dataset's target recall (query_api/tuning.py), off the request path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from query_api.projection import INSERT_THREADS
from query_api.registry import Projections
from query_api.tuning import due
from tributary.metrics import BELOW_TARGET_RECALL, INDEX_MEMORY, INDEX_TUNINGS, VECTORS_PENDING_INDEX

log = logging.getLogger(__name__)

CHUNK_S = 0.02
# Inserted between two looks at the clock: at most about 45 ms of replaced 384-d vectors.
BATCH_PER_THREAD = 16
PAUSE_S = 0.005
IDLE_S = 1.0
LARGE_BACKLOG = 4096
NICE = 10


class Indexer:
    def __init__(self, projections: Projections) -> None:
        self._projections = projections
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hnsw-indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._projections.written.set()
        self._thread.join()

    def _run(self) -> None:
        # Background work in earnest: on Linux, nice applies to this thread and to the threads hnswlib starts
        # from it, so indexing yields the cores to event application, searches and the other processes.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while not self._stopping.is_set():
            self._projections.written.clear()
            self._measure()
            if self._index_a_chunk_of_each():
                self._stopping.wait(PAUSE_S)
            else:
                self._tune_each()
                self._projections.written.wait(IDLE_S)

    def _tune_each(self) -> None:
        for served in self._projections.all():
            # Each vector field of a dataset has its own index, tuned on its own searches.
            for field, space in served.projection.spaces.items():
                if space.pending or not due(space.tuning, space.indexed, space.recent_searches):
                    continue
                try:
                    tuning = space.tune(seed=space.indexed)
                except Exception:
                    log.exception("tuning the search breadth failed")
                    continue
                INDEX_TUNINGS.inc()
                log.info(
                    "tuned %d vectors of %s on %s: ef %d, recall@10 %.3f (target %.3f)",
                    tuning.rows,
                    field,
                    "recent searches" if tuning.on_searches else "queries made from rows",
                    tuning.ef,
                    tuning.recall,
                    tuning.target,
                )

    def _measure(self) -> None:
        # Read without the lock: a figure a turn old is good enough for a gauge.
        served = [s.projection for s in self._projections.all()]
        VECTORS_PENDING_INDEX.set(sum(projection.pending for projection in served))
        INDEX_MEMORY.set(sum(projection.memory_bytes for projection in served))
        BELOW_TARGET_RECALL.set(
            sum(space.tuning.short for projection in served for space in projection.spaces.values())
        )

    def _index_a_chunk_of_each(self) -> bool:
        indexed = 0
        for served in self._projections.all():
            projection = served.projection
            if not projection.pending:
                continue
            threads = INSERT_THREADS if projection.pending >= LARGE_BACKLOG else 1
            try:
                with projection.lock.writing():
                    deadline = time.perf_counter() + CHUNK_S
                    while time.perf_counter() < deadline:
                        done = projection.index_pending(BATCH_PER_THREAD * threads, threads=threads)
                        if not done:
                            break
                        indexed += done
            except Exception:
                # Pending slots stay searchable by exact scan; retrying at once would spin on the same error.
                log.exception("indexing a chunk of pending vectors failed")
                self._stopping.wait(IDLE_S)
        return indexed > 0
