"""A stream of vector writes through the command API with a model of what must end up in DeepLake:
fresh upserts, overwrites of existing ids and deletes, applied in order per dataset. Only acknowledged
(202) requests enter the model."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import deeplake
import httpx
import numpy as np

from tributary.settings import Settings

DIMENSIONS = 16


@dataclass
class Expected:
    rows: dict[str, tuple[list[float], dict[str, int]]] = field(default_factory=dict)
    written: int = 0  # vectors in acknowledged upserts


async def stream_writes(
    client: httpx.AsyncClient, dataset: str, requests: int, batch: int, seed: int
) -> Expected:
    rng = np.random.default_rng(seed)
    expected = Expected()
    fresh = 0
    for n in range(requests):
        if n % 10 == 9 and expected.rows:
            # Overwrite existing ids with new vectors: an upsert replaces, it never duplicates.
            ids = list(
                rng.choice(sorted(expected.rows), size=min(batch // 10, len(expected.rows)), replace=False)
            )
        else:
            ids = [f"{dataset}-{fresh + i}" for i in range(batch)]
            fresh += batch
        vectors = rng.standard_normal((len(ids), DIMENSIONS)).astype(np.float32)
        records = [
            {"id": vid, "vector": vec.tolist(), "metadata": {"n": n}}
            for vid, vec in zip(ids, vectors, strict=True)
        ]
        answer = await client.post(f"/api/v1/datasets/{dataset}/vectors", json={"vectors": records})
        assert answer.status_code == 202, answer.text
        expected.written += len(ids)
        for vid, vec in zip(ids, vectors, strict=True):
            expected.rows[vid] = (vec.tolist(), {"n": n})
        if n % 7 == 6:
            doomed = list(rng.choice(sorted(expected.rows), size=batch // 20, replace=False))
            answer = await client.post(f"/api/v1/datasets/{dataset}/vectors/delete", json={"ids": doomed})
            assert answer.status_code == 202, answer.text
            for vid in doomed:
                del expected.rows[vid]
    return expected


def stored_rows(settings: Settings, dataset: str) -> tuple[list[str], np.ndarray, list[object]]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/{dataset}")
    ids = [str(i) for i in ds["id"][:]]
    return ids, np.asarray(ds["embedding"][:]), list(ds["metadata"][:])


async def until_stored(settings: Settings, dataset: str, expected: Expected, timeout: float) -> None:
    """Wait until DeepLake holds exactly the expected ids, then check every vector and metadata value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ids, vectors, metadata = stored_rows(settings, dataset)
        # The ids match before a last overwrite of existing ids is applied: wait for the contents too.
        if (sorted(ids) == sorted(expected.rows) and not _differing(ids, vectors, metadata, expected)) or (
            asyncio.get_running_loop().time() > deadline
        ):
            break
        await asyncio.sleep(0.5)
    assert len(ids) == len(set(ids)), "duplicate ids in DeepLake"
    missing, extra = set(expected.rows) - set(ids), set(ids) - set(expected.rows)
    assert not missing and not extra, (
        f"{len(missing)} missing ({sorted(missing)[:5]}...), {len(extra)} unexpected ({sorted(extra)[:5]}...)"
    )
    wrong = _differing(ids, vectors, metadata, expected)
    assert not wrong, f"{len(wrong)} rows differ (id, stored metadata, expected metadata): {wrong[:5]}"


def _differing(
    ids: list[str], vectors: np.ndarray, metadata: list[object], expected: Expected
) -> list[tuple[str, object, dict[str, int]]]:
    """(id, stored metadata, expected metadata) of the expected rows stored with other contents."""
    return [
        (vid, json.loads(str(metadata[row])), expected.rows[vid][1])
        for row, vid in enumerate(ids)
        if vid in expected.rows
        and (
            not np.array_equal(vectors[row], np.asarray(expected.rows[vid][0], dtype=np.float32))
            or json.loads(str(metadata[row])) != expected.rows[vid][1]
        )
    ]
