"""The HNSW graphs a query replica saves when it stops, so that it starts again without inserting every vector
anew (inserting is most of a load: minutes at a million vectors).

A save is a snapshot of one projection: for each vector field its graph (hnswlib's own file), and once for the
dataset the id each slot holds, with for each field the slots live in its graph and the fingerprint of the
vector it holds for each (`query_api.projection.fingerprints`), and what the graph was built with (dimensions,
metric, M, ef_construction, hnswlib's version, `FORMAT`). One save for all the fields of a dataset, as they share
the slots: a field's graph is only meaningful with the slot ids it was saved with.

A load still reads every row from DeepLake, which is the truth: each id goes back to its saved slot (new ids to
free slots), and a slot keeps its HNSW entry only when its row's vector has the saved fingerprint; a changed
vector's entry is marked deleted and the vector goes pending, and an id gone from DeepLake frees its slot and
its entry (query_api/registry.py, `load_dataset`). A missing save, one of another spec or format, or any error
reading it: the load builds the graphs from scratch, as without saves.

Files: `<root>/<tenant>/<dataset>/` holds `current` (the name of the complete save), that save's directory
(`state.npz`, and `<n>.hnsw` for the n-th field), and `lock`. A save is written into a new directory that is
renamed into place when complete, then `current` is replaced (a rename, atomic); the directories it no longer
names are removed. Processes of one role (`--workers N`) share the directory: a writer holds the lock
exclusively (one that finds it taken leaves the save to the other: both followed the same event log), a reader
shares it while it reads, so none sees a save half written or half removed. Each graph's xxh3 digest is checked
before hnswlib reads it: hnswlib trusts its file, and a damaged one could crash the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from query_api.projection import DatasetProjection

log = logging.getLogger(__name__)

# Under the replica's data_dir.
GRAPHS_DIR = "graphs"
# What `state.npz` holds and how: a save of another format is not read.
FORMAT = 1
CURRENT = "current"
STATE = "state.npz"
LOCK = "lock"
_READ_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True)
class SavedGraphs:
    """Where a replica keeps its saved graphs (`root`), and which projections are worth saving: those with at
    least `min_vectors` vectors in HNSW over their fields (smaller ones rebuild in no time)."""

    root: Path
    min_vectors: int

    def save(self, tenant: str, dataset: str, projection: DatasetProjection) -> bool:
        """Save the projection's graphs, replacing the last save; False when it is not worth it, or another
        process is saving this dataset now."""
        if projection.indexed < self.min_vectors:
            return False
        here = self.root / tenant / dataset
        here.mkdir(parents=True, exist_ok=True)
        with _locked(here, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
            if not locked:
                log.info("%s/%s: another process is saving its HNSW graphs", tenant, dataset)
                return False
            # What writers that were killed or failed left (a save half written, or renamed but never made
            # current): it would otherwise stay, and on a full disk keep every later save from fitting.
            _remove_all_but(here, {LOCK, CURRENT, _current(here)})
            name = uuid.uuid4().hex
            work = here / f"{name}.tmp"
            work.mkdir()
            try:
                _write(work, projection)
                os.rename(work, here / name)
                _replace(here / CURRENT, name.encode())
                _fsync(here)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            # Older saves, and what writers that died left.
            _remove_all_but(here, {name, CURRENT, LOCK})
        return True

    def forget_others(self, kept: Collection[tuple[str, str]]) -> None:
        """Remove the saves of the datasets not in `kept` (deleted since they were saved), all but their lock
        files: another process may be opening one, and would lock a file no one else sees if it were made
        anew."""
        for here in self.root.glob("*/*"):
            if (here.parent.name, here.name) in kept or not here.is_dir():
                continue
            with _locked(here, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
                if locked:
                    _remove_all_but(here, {LOCK})

    def restore(self, tenant: str, dataset: str, projection: DatasetProjection, rows: int) -> bool:
        """Place the saved slot ids into the empty `projection` and have its fields adopt their saved graphs, with
        room for the saved slots or the dataset's `rows`, whichever are more (a load then upserts every row and
        `settle`s). False when there is no save; an exception when it cannot be used (another spec or format, a
        damaged file)."""
        here = self.root / tenant / dataset
        with _locked(here, fcntl.LOCK_SH) as locked:
            if not locked or not (here / CURRENT).exists():
                return False
            saved = here / _current(here)
            with np.load(saved / STATE) as state:
                arrays = {key: state[key] for key in state.files}
            about = json.loads(arrays["about"].tobytes())
            fields = _fields(projection)
            expected = {"format": FORMAT, "hnswlib": version("hnswlib"), "fields": fields}
            found = {key: about[key] for key in expected}
            if found != expected:
                raise ValueError(f"saved with {found}, needed {expected}")
            ids = _ids(arrays["ids"], arrays["id_ends"], arrays["held"])
            # Room for every saved slot or every row, whichever is more: more only when many ids changed.
            projection.reserve(max(len(ids), rows))
            projection.place(ids)
            for n, space in enumerate(projection.spaces.values()):
                graph = saved / f"{n}.hnsw"
                if _digest(graph) != about["digests"][n]:
                    raise ValueError(f"{graph} is damaged: its digest is not the one saved")
                space.adopt(str(graph), arrays[f"indexed_{n}"], arrays[f"fingerprints_{n}"])
        return True


def _write(work: Path, projection: DatasetProjection) -> None:
    arrays: dict[str, Any] = {}
    with projection.lock.reading():
        ids = projection.slot_ids
        for n, space in enumerate(projection.spaces.values()):
            arrays[f"indexed_{n}"], arrays[f"fingerprints_{n}"] = space.save(str(work / f"{n}.hnsw"))
    held = np.fromiter((vector_id is not None for vector_id in ids), dtype=bool, count=len(ids))
    encoded = [(vector_id or "").encode() for vector_id in ids]
    arrays["ids"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays["id_ends"] = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    arrays["held"] = held
    about = {
        "format": FORMAT,
        "hnswlib": version("hnswlib"),
        "fields": _fields(projection),
        "digests": [_digest(work / f"{n}.hnsw") for n in range(len(projection.spaces))],
    }
    arrays["about"] = np.frombuffer(json.dumps(about).encode(), dtype=np.uint8)
    with (work / STATE).open("wb") as file:
        np.savez(file, **arrays)
    for entry in work.iterdir():
        _fsync(entry)
    _fsync(work)


def _fields(projection: DatasetProjection) -> list[dict[str, Any]]:
    return [{"name": name, **space.built_with} for name, space in projection.spaces.items()]


def _ids(blob: np.ndarray, ends: np.ndarray, held: np.ndarray) -> list[str | None]:
    text, stops = blob.tobytes(), ends.tolist()
    starts = [0, *stops][: len(stops)]
    return [
        text[start:stop].decode() if kept else None
        for start, stop, kept in zip(starts, stops, held.tolist(), strict=True)
    ]


def _current(here: Path) -> str:
    """The name of the complete save `current` names ("" when there is none)."""
    try:
        return (here / CURRENT).read_text().strip()
    except FileNotFoundError:
        return ""


def _remove_all_but(here: Path, kept: set[str]) -> None:
    for entry in here.iterdir():
        if entry.name in kept:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _digest(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with path.open("rb") as file:
        while block := file.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _replace(path: Path, content: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    with temporary.open("wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _locked(here: Path, operation: int) -> Iterator[bool]:
    """Hold the dataset's lock (shared or exclusive); False when there is no directory, or with LOCK_NB, when
    another holds it."""
    try:
        descriptor = os.open(here / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, operation)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)
