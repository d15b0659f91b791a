"""Snapshots end to end over HTTP, in embedded mode (backups in a folder) and through the distributed roles over
Kafka (backups in S3Proxy, sealed with AES-256-GCM): write, snapshot, write more, restore into a new dataset and
over the original, and every search answers as the original did at the snapshot; a corrupt snapshot is refused
with its reason and changes nothing; another tenant sees none of it."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from entrypoints.http_app import create_app
from tests.helpers import eventually, serving
from tests.kafka_tools import distributed
from tests.services import S3Service
from tests.write_stream import DIMENSIONS, stored_rows, stream_writes, until_stored
from tributary.backup_store import FolderStore, S3Store
from tributary.settings import Settings
from tributary.snapshots import existing_snapshot, tag_of
from tributary.storage import DatasetStore

DIMS = 8
STRONG = "?consistency=strong"


@asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with serving(create_app(settings)) as client:
        yield client, client


def records(ids: range, rng: np.random.Generator, tag: str) -> list[dict[str, Any]]:
    return [
        {"id": f"v{i}", "vector": rng.normal(size=DIMS).tolist(), "metadata": {"i": i, "tag": tag}}
        for i in ids
    ]


async def write(
    client: httpx.AsyncClient, path: str, body: Any = None, method: str = "POST"
) -> dict[str, Any]:
    answer = await client.request(method, path + ("&" if "?" in path else "?") + "wait=true", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def answers(
    client: httpx.AsyncClient, dataset: str, queries: np.ndarray
) -> list[list[tuple[str, float]]]:
    found = []
    for query in queries:
        # Exact: whether a vector is in HNSW yet or still scanned depends on the indexer's timing, and HNSW may
        # order a near tie otherwise; the data, not the index's timing, is what must be the same.
        answer = await client.post(
            f"/api/v1/datasets/{dataset}/search{STRONG}",
            json={"vector": query.tolist(), "k": 10, "exact": True},
        )
        assert answer.status_code == 200, answer.text
        found.append([(r["id"], r["score"]) for r in answer.json()["results"]])
    return found


def same(left: list[list[tuple[str, float]]], right: list[list[tuple[str, float]]]) -> bool:
    """The same ids in the same order, with scores equal but for float32 rounding (an index built again sums
    in another order)."""
    return [[i for i, _ in page] for page in left] == [[i for i, _ in page] for page in right] and all(
        abs(a - b) < 1e-4
        for lp, rp in zip(left, right, strict=True)
        for (_, a), (_, b) in zip(lp, rp, strict=True)
    )


async def count(client: httpx.AsyncClient, dataset: str) -> int:
    answer = await client.post(f"/api/v1/datasets/{dataset}/count{STRONG}", json={})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


@pytest.fixture(params=["embedded", "distributed-s3-sealed"])
def mode(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> tuple[Settings, Any, Any]:
    """The settings, how to serve them, and the plain store under the backups (to corrupt an object)."""
    if request.param == "embedded":
        settings: Settings = request.getfixturevalue("embedded_settings")
        settings = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
        return settings, embedded, FolderStore(tmp_path / "backups")
    settings, plain = request.getfixturevalue("sealed_on_s3")
    return settings, distributed, plain


@pytest.fixture
def sealed_on_s3(request: pytest.FixtureRequest, run_id: str) -> tuple[Settings, S3Store]:
    """Distributed settings with the backups on S3Proxy, sealed with AES-256-GCM, and the plain store under them."""
    s3: S3Service = request.getfixturevalue("s3_service")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
    base: Settings = request.getfixturevalue("distributed_settings")
    settings = base.model_copy(
        update={
            "backup_url": f"s3://{s3.bucket}/{run_id}/backups",
            "backup_s3_endpoint": s3.endpoint,
            "backup_s3_region": "us-east-1",
            "backup_encryption_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
        }
    )
    return settings, S3Store(s3.bucket, f"{run_id}/backups", s3.endpoint, "us-east-1")


async def test_restore_answers_as_at_the_snapshot_and_a_corrupt_one_changes_nothing(
    mode: tuple[Settings, Any, Any],
) -> None:
    settings, serve, plain = mode
    rng = np.random.default_rng(7)
    queries = rng.normal(size=(5, DIMS)).astype(np.float32)
    serving_ctx: AbstractAsyncContextManager[tuple[httpx.AsyncClient, httpx.AsyncClient]] = serve(settings)
    async with serving_ctx as (commands, reads):
        await write(commands, "/api/v1/datasets", {"name": "docs", "dimensions": DIMS})
        await write(
            commands, "/api/v1/datasets/docs/vectors", {"vectors": records(range(300), rng, "before")}
        )
        before = await answers(reads, "docs", queries)

        taken = await write(commands, "/api/v1/datasets/docs/snapshots", {"keep_last": 5})
        snapshot_id = taken["operation_id"]
        # The manifest names where its command is in the command log: the snapshot's consistency token.
        manifest = await existing_snapshot(settings, "default", "docs", snapshot_id)
        assert manifest.log_position == taken["consistency_token"]

        # Later writes: new vectors near the queries, replaced ones, a delete and a metadata change.
        near = [{"id": f"n{i}", "vector": (q + 0.01).tolist()} for i, q in enumerate(queries)]
        await write(commands, "/api/v1/datasets/docs/vectors", {"vectors": near})
        await write(commands, "/api/v1/datasets/docs/vectors", {"vectors": records(range(50), rng, "after")})
        await write(commands, "/api/v1/datasets/docs/vectors/delete", {"ids": ["v60", "v61"]})
        later = await answers(reads, "docs", queries)
        assert not same(later, before) and await count(reads, "docs") == 303

        listed = (await reads.get("/api/v1/datasets/docs/snapshots")).json()["snapshots"]
        assert [(s["snapshot_id"], s["vector_count"], s["dimensions"]) for s in listed] == [
            (snapshot_id, 300, DIMS)
        ]
        one = await reads.get(f"/api/v1/datasets/docs/snapshots/{snapshot_id}")
        assert one.status_code == 200 and one.json()["encrypted"] == (
            settings.backup_encryption_key is not None
        )

        # Into a new dataset: as the original at the snapshot; the original keeps its later writes.
        await write(commands, f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore?target=copy")
        assert same(await answers(reads, "copy", queries), before)
        assert same(await answers(reads, "docs", queries), later)
        catalog = (await reads.get("/api/v1/datasets/copy")).json()
        assert catalog["vector_count"] == 300 and catalog["dimensions"] == DIMS

        # Over the original: as at the snapshot, and a write after the restore applies on top of that state.
        await write(commands, f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore")
        assert same(await answers(reads, "docs", queries), before)
        await write(
            commands,
            "/api/v1/datasets/docs/vectors",
            {"vectors": [{"id": "x", "vector": queries[0].tolist()}]},
        )
        assert (await answers(reads, "docs", queries[:1]))[0][0][0] == "x"
        assert await count(reads, "docs") == 301
        assert (await reads.get("/api/v1/datasets/docs")).json()["vector_count"] == 301

        # One byte flipped in a stored part: refused with the reason, before anything changed.
        key = f"default/docs/{snapshot_id}/records-00000.json"
        flipped = bytearray(plain.get(key))
        flipped[len(flipped) // 2] ^= 1
        plain.put(key, bytes(flipped))
        refused = await commands.post(f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore?wait=true")
        assert refused.status_code == 422, refused.text
        reason = refused.json()["reason"]
        assert "records-00000.json" in reason and "nothing was restored" in reason, reason
        assert await count(reads, "docs") == 301
        assert (await answers(reads, "docs", queries[:1]))[0][0][0] == "x"

        # Another tenant: every snapshot route is a 404, as for a missing snapshot.
        made = await commands.post("/api/v1/admin/keys", json={"tenant": "other", "roles": ["admin"]})
        assert made.status_code in (200, 201), made.text
        other = {"Authorization": f"Bearer {made.json()['key']}"}
        for method, path in [
            ("GET", "/api/v1/datasets/docs/snapshots"),
            ("GET", f"/api/v1/datasets/docs/snapshots/{snapshot_id}"),
            ("POST", f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore"),
            ("DELETE", f"/api/v1/datasets/docs/snapshots/{snapshot_id}"),
        ]:
            client = reads if method == "GET" else commands
            answer = await client.request(method, path, headers=other)
            assert answer.status_code == 404, f"{method} {path}: {answer.text}"

        # Deleted: no longer listed, and restoring it is a 404.
        await write(commands, f"/api/v1/datasets/docs/snapshots/{snapshot_id}", method="DELETE")
        assert (await reads.get("/api/v1/datasets/docs/snapshots")).json()["snapshots"] == []
        gone = await commands.post(f"/api/v1/datasets/docs/snapshots/{snapshot_id}/restore")
        assert gone.status_code == 404


async def test_a_snapshot_taken_while_100k_vectors_stream_in_restores_as_the_dataset_was_then(
    sealed_on_s3: tuple[Settings, S3Store],
) -> None:
    """Through Kafka, with the backups on S3 and sealed: a snapshot lands in the middle of a stream of 100,000
    vectors (upserts, overwrites, deletes); restored into a new dataset it holds exactly the original's ids,
    vectors and metadata at the snapshot's version and answers its exact searches, while the original keeps
    every write acknowledged after it."""
    settings, _ = sealed_on_s3
    async with distributed(settings) as (commands, reads):
        await write(commands, "/api/v1/datasets", {"name": "big", "dimensions": DIMENSIONS})
        stream = asyncio.ensure_future(stream_writes(commands, "big", requests=110, batch=1000, seed=1))

        async def halfway() -> bool | None:
            answer = await reads.post("/api/v1/datasets/big/count", json={})
            return True if answer.status_code == 200 and answer.json()["count"] >= 40_000 else None

        await eventually(halfway, timeout=600, every=0.5)
        snapshot_id = (await write(commands, "/api/v1/datasets/big/snapshots", {}))["operation_id"]
        assert not stream.done(), "the stream ended before the snapshot: it must fall in the middle"
        expected = await stream
        assert expected.written >= 100_000
        await until_stored(settings, "big", expected, timeout=300)

        await write(commands, f"/api/v1/datasets/big/snapshots/{snapshot_id}/restore?target=copy")
        held = (await reads.get(f"/api/v1/datasets/big/snapshots/{snapshot_id}")).json()["vector_count"]
        assert 40_000 <= held < len(expected.rows)
        then = DatasetStore(settings.resolved_storage_root).rows_at(
            "default", "big", tag_of(snapshot_id), 0, held
        )
        ids, vectors, metadata = stored_rows(settings, "copy")
        assert len(ids) == len(set(ids)) == held
        original = {
            i: (v.tobytes(), m) for i, v, m in zip(then.ids, then.vectors, then.metadata, strict=True)
        }
        copied = {i: (v.tobytes(), str(m)) for i, v, m in zip(ids, vectors, metadata, strict=True)}
        assert copied == original

        unit = then.vectors / np.linalg.norm(then.vectors, axis=1, keepdims=True)
        for query in np.random.default_rng(2).normal(size=(5, DIMENSIONS)).astype(np.float32):
            exact = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:10]
            body = {"vector": query.tolist(), "k": 10, "exact": True}

            async def searched() -> httpx.Response | None:
                # The replica loads the restored 100,000 rows: a strong read may time out (504) meanwhile.
                answer = await reads.post(f"/api/v1/datasets/copy/search{STRONG}", json=body)  # noqa: B023
                return None if answer.status_code == 504 else answer

            answer = await eventually(searched, timeout=300, every=0.5)
            assert answer.status_code == 200, answer.text
            assert [r["id"] for r in answer.json()["results"]] == [then.ids[row] for row in exact]
        assert await count(reads, "copy") == held
        assert await count(reads, "big") == len(expected.rows)
