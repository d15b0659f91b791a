"""A stream of vector writes through the command API with a model of what must end up in DeepLake:
fresh upserts, overwrites of existing ids and deletes, applied in order per dataset. Only acknowledged
(202) requests enter the model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import httpx
import numpy as np

from tributary.deeplake_lib import deeplake
from tributary.settings import Settings

DIMENSIONS = 16


@dataclass
class Expected:
    rows: dict[str, tuple[list[float], dict[str, int]]] = field(default_factory=dict)
    written: int = 0  # vectors in acknowledged upserts


async def stream_writes(
    client: httpx.AsyncClient,
    dataset: str,
    requests: int,
    batch: int,
    seed: int,
    until: asyncio.Event | None = None,
) -> Expected:
    """Send `requests` requests, and more until `until` is set, if given."""
    rng = np.random.default_rng(seed)
    expected = Expected()
    fresh = 0
    n = 0
    while n < requests or (until is not None and not until.is_set()):
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
        n += 1
    return expected


def stored_rows(settings: Settings, dataset: str) -> tuple[list[str], np.ndarray, list[object]]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/{dataset}")
    ids = [str(i) for i in ds["id"][:]]
    return ids, np.asarray(ds["embedding"][:]), list(ds["metadata"][:])


def differences(settings: Settings, dataset: str, expected: Expected) -> list[str]:
    """How DeepLake differs from the expected content: duplicate, missing and unexpected ids, other vectors or
    metadata. Empty when it holds exactly what was acknowledged, with the last write of each id."""
    ids, vectors, metadata = stored_rows(settings, dataset)
    found: list[str] = []
    if len(ids) != len(set(ids)):
        found.append(f"{len(ids) - len(set(ids))} duplicate ids")
    missing, extra = set(expected.rows) - set(ids), set(ids) - set(expected.rows)
    if missing or extra:
        found.append(
            f"{len(missing)} missing ({sorted(missing)[:5]}...), {len(extra)} unexpected ({sorted(extra)[:5]}...)"
        )
    wrong = [
        (vid, json.loads(str(metadata[row])), expected.rows[vid][1])
        for row, vid in enumerate(ids)
        if vid in expected.rows
        and (
            not np.array_equal(vectors[row], np.asarray(expected.rows[vid][0], dtype=np.float32))
            or json.loads(str(metadata[row])) != expected.rows[vid][1]
        )
    ]
    if wrong:
        found.append(f"{len(wrong)} rows differ (id, stored metadata, expected metadata): {wrong[:5]}")
    return found


async def until_stored(settings: Settings, dataset: str, expected: Expected, timeout: float) -> None:
    """Wait until DeepLake holds exactly the expected content (every id, vector and metadata value): the last
    acknowledged writes may still be on their way when the ids already match."""
    await until_no_differences(partial(asyncio.to_thread, differences, settings, dataset, expected), timeout)


async def until_no_differences(found: Callable[[], Awaitable[list[str]]], timeout: float) -> None:
    """Wait until `found` lists no difference; past `timeout`, fail with the last ones it listed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while differing := await found():
        assert asyncio.get_running_loop().time() < deadline, "; ".join(differing)
        await asyncio.sleep(0.5)
