"""DeepLake 4.7 compacts a dataset's trailing commits into one once they pass a threshold (64 small commits; its
`<n>o<counter>` versions). That compaction rewrote every embedding block that had a row overwritten in place as a
flat array, so each of its rows then read back as one float: found by the S3 crash test (tests/test_storage_s3.py),
then on a local folder without any crash. The writer never writes an embedding in place; these tests take it past
compactions with overwrites (upserts of existing ids and a restore's `replace_all`) and read every row back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tributary.storage import Commit, DatasetSpec, DatasetStore, DatasetWriter, Rows

DIMENSIONS = 8
# DeepLake's own name for a compacted version: the version number, "o", a counter.
COMPACTED = re.compile(r"\d+o[0-9a-f]+")

Model = dict[str, tuple[list[float], str]]


def write(writer: DatasetWriter, expected: Model, commits: int, rng: np.random.Generator) -> None:
    """`commits` commits, each of fresh ids and overwrites of existing ones (vectors and metadata)."""
    for _ in range(commits):
        existing = sorted(expected)
        overwritten = [str(i) for i in rng.choice(existing, size=min(10, len(existing)), replace=False)]
        ids = [f"v{len(expected) + i}" for i in range(40)] + overwritten
        vectors = rng.standard_normal((len(ids), DIMENSIONS)).astype(np.float32)
        serial = int(rng.integers(1 << 30))
        writer.upsert(ids, vectors, None, [{"serial": serial}] * len(ids))
        writer.commit()
        expected.update(
            {
                vector_id: (vector.tolist(), f'{{"serial":{serial}}}')
                for vector_id, vector in zip(ids, vectors, strict=True)
            }
        )


def stored(store: DatasetStore) -> Model:
    ds = store.read_at("t", "d")
    rows: Model = {}
    for vector_id, vector, metadata in zip(ds["id"][:], ds["embedding"][:], ds["metadata"][:], strict=True):
        assert str(vector_id) not in rows, f"{vector_id} twice"
        rows[str(vector_id)] = (np.asarray(vector, dtype=np.float32).tolist(), str(metadata))
    return rows


def compactions(store: DatasetStore) -> int:
    history = store.history("t", "d")
    assert history is not None
    return sum(1 for version in history if COMPACTED.fullmatch(version.version))


def test_overwritten_rows_read_back_whole_after_compactions(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    store.create("t", "d", DatasetSpec(dimensions=DIMENSIONS, metric="cosine"), Commit([], []))
    writer = store.writer("t", "d")
    assert writer is not None
    rng = np.random.default_rng(7)
    expected: Model = {}
    write(writer, expected, 70, rng)
    # A restore over the dataset, then more overwrites past the next compaction.
    restored = {
        f"r{i}": (rng.standard_normal(DIMENSIONS).astype(np.float32).tolist(), "{}") for i in range(300)
    }
    writer.replace_all(
        [
            Rows(
                ids=list(restored),
                vectors=np.asarray([vector for vector, _ in restored.values()], dtype=np.float32),
                texts=[""] * len(restored),
                metadata=[metadata for _, metadata in restored.values()],
            )
        ]
    )
    writer.commit()
    expected = restored
    write(writer, expected, 70, rng)
    assert compactions(store) >= 2, "the writes never reached DeepLake's compaction: the test checks nothing"
    found = stored(store)
    assert sorted(found) == sorted(expected)
    differing = [vector_id for vector_id, row in expected.items() if found[vector_id] != row]
    assert not differing, (
        f"{len(differing)} of {len(expected)} rows read back otherwise, e.g. {differing[:3]}"
    )
