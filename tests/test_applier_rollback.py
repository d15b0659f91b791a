"""A batch that fails before its commit leaves nothing behind: DeepLake writes a dropped handle's uncommitted
changes to the dataset's head (a fresh open reads them, and the next commit would carry them), so the applier's
writers discard them when they are dropped, and a new writer starts from the last commit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from events import CreateDataset, CreateDatasetPayload, UpsertVectors, UpsertVectorsPayload
from tributary.storage import DatasetStore, DatasetWriter
from workers.applier import apply_commands


def ids(store: DatasetStore) -> list[str]:
    ds = store.read_at("t", "d")  # held: a column outlives no dataset handle
    return [str(i) for i in ds["id"][:]]


def upsert(ids: list[str]) -> UpsertVectors:
    payload = UpsertVectorsPayload(ids=ids, vectors=np.ones((len(ids), 2), dtype=np.float32))
    return UpsertVectors(tenant="t", dataset="d", payload=payload)


def test_a_failed_batch_leaves_no_uncommitted_rows_for_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DatasetStore(str(tmp_path))
    apply_commands(
        [CreateDataset(tenant="t", dataset="d", payload=CreateDatasetPayload(dimensions=2))], store
    )
    apply_commands([upsert(["a"])], store)

    def crash(self: DatasetWriter) -> str:
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(DatasetWriter, "commit", crash)
        with pytest.raises(RuntimeError):
            apply_commands([upsert(["lost"])], store)
    # The failed batch's row is neither read by a fresh reader nor committed by the next batch.
    assert ids(store) == ["a"]
    apply_commands([upsert(["b"])], store)
    assert ids(store) == ["a", "b"]
