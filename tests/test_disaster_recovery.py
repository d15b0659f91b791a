"""The disaster-recovery drill of docs/operations.md, against Kafka and PostgreSQL: back up a running deployment
with `tributary backup`, lose its data directory and its database schema, `tributary restore` into a fresh
deployment (new topics), and the same searches answer the same, with the same API keys; a backup with one byte
flipped is refused before anything changes."""

from __future__ import annotations

import base64
import os
import shutil
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from entrypoints.http_app import create_app
from tests.helpers import serving
from tests.kafka_tools import distributed
from tests.processes import tributary_command
from tests.services import S3Service
from tributary.backup_store import SEALED_MAGIC, FolderStore, S3Store
from tributary.db.session import engine_for
from tributary.disaster_recovery import BACKUP_MANIFEST, BackupRefused, back_up, restore
from tributary.settings import Settings
from tributary.storage import DatasetStore

DIMS = 8
STRONG = "?consistency=strong"
# (tenant, dataset, rows)
DATASETS = [("default", "docs", 300), ("acme", "items", 120)]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def answers(client: httpx.AsyncClient, key: str, dataset: str, queries: np.ndarray) -> list[Any]:
    found = []
    for i, query in enumerate(queries):
        body: dict[str, Any] = {"vector": query.tolist(), "k": 5, "include": ["metadata"]}
        if i % 2:
            body["filter"] = {"i": {"$lt": 60}}
        answer = await client.post(f"/api/v1/datasets/{dataset}/search{STRONG}", json=body, headers=auth(key))
        assert answer.status_code == 200, answer.text
        found.append([(r["id"], round(r["score"], 4), r["metadata"]) for r in answer.json()["results"]])
    return found


async def test_the_drill_restores_searches_and_keys_into_a_fresh_deployment(
    distributed_settings: Settings, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = distributed_settings
    backup = tmp_path_factory.mktemp("backup") / "drill"
    rng = np.random.default_rng(13)
    queries = rng.normal(size=(4, DIMS)).astype(np.float32)
    admin = settings.admin_key.get_secret_value() if settings.admin_key else ""
    async with distributed(settings) as (writes, reads):
        made = await writes.post("/api/v1/admin/keys", json={"tenant": "acme", "roles": ["admin"]})
        assert made.status_code == 201, made.text
        keys = {"default": admin, "acme": made.json()["key"]}
        for tenant, dataset, rows in DATASETS:
            key = auth(keys[tenant])
            created = await writes.post(
                "/api/v1/datasets?wait=true", json={"name": dataset, "dimensions": DIMS}, headers=key
            )
            assert created.status_code == 200, created.text
            records = [
                {"id": f"v{i}", "vector": rng.normal(size=DIMS).tolist(), "metadata": {"i": i, "t": tenant}}
                for i in range(rows)
            ]
            upserted = await writes.post(
                f"/api/v1/datasets/{dataset}/vectors?wait=true", json={"vectors": records}, headers=key
            )
            assert upserted.status_code == 200, upserted.text
        before = {d: await answers(reads, keys[t], d, queries) for t, d, _ in DATASETS}
        # Backed up while the deployment runs.
        made_backup = await tributary_command(settings, "backup", str(backup))
        assert made_backup.returncode == 0, made_backup.stderr
        assert "2 datasets" in made_backup.stdout

    # The disaster: the data directory and the database schema are gone.
    shutil.rmtree(settings.resolved_storage_root)
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        assert settings.database_schema is not None
        await connection.execute(text(f'DROP SCHEMA "{settings.database_schema}" CASCADE'))
        await connection.execute(text(f'CREATE SCHEMA "{settings.database_schema}"'))
    await engine.dispose()

    fresh = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-fresh"})
    restored = await tributary_command(fresh, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    async with distributed(fresh) as (writes, reads):
        # `strong` on the fresh topics, where the datasets' partitions hold no command yet (it waited for an
        # applier commit that never comes, a 504, until follower.py let an empty partition pass).
        after = {d: await answers(reads, keys[t], d, queries) for t, d, _ in DATASETS}
        assert after == before
        # The keys made before the disaster still work, and still only in their tenant.
        assert (await reads.get("/api/v1/datasets/docs", headers=auth(keys["acme"]))).status_code == 404
        listed = await reads.get("/api/v1/datasets", headers=auth(keys["acme"]))
        assert [d["name"] for d in listed.json()["datasets"]] == ["items"]
        # Writes go on on top of the restored data.
        more = await writes.post(
            "/api/v1/datasets/items/vectors?wait=true",
            json={"vectors": [{"id": "new", "vector": [1.0] * DIMS}]},
            headers=auth(keys["acme"]),
        )
        assert more.status_code == 200, more.text
        counted = await reads.post(
            f"/api/v1/datasets/items/count{STRONG}", json={}, headers=auth(keys["acme"])
        )
        assert counted.json()["count"] == 121


async def test_a_flipped_byte_is_refused_before_anything_changes(
    embedded_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = embedded_settings
    rng = np.random.default_rng(5)
    async with serving(create_app(settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": DIMS})
        assert created.status_code == 200, created.text
        records = [{"id": f"v{i}", "vector": rng.normal(size=DIMS).tolist()} for i in range(50)]
        upserted = await client.post("/api/v1/datasets/docs/vectors?wait=true", json={"vectors": records})
        assert upserted.status_code == 200, upserted.text
    folder = tmp_path_factory.mktemp("backup")
    backups = FolderStore(folder)
    engine = engine_for(settings)
    try:
        await back_up(engine, DatasetStore(settings.resolved_storage_root), backups)
        with pytest.raises(BackupRefused, match="already holds a backup"):
            await back_up(engine, DatasetStore(settings.resolved_storage_root), backups)
    finally:
        await engine.dispose()

    (part,) = [key for key in backups.keys("default/docs/") if "vectors-" in key]
    flipped = bytearray(backups.get(part))
    flipped[-1] ^= 0x01
    backups.put(part, bytes(flipped))
    empty = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("fresh"))  # type: ignore[call-arg]
    engine = engine_for(empty)
    try:
        with pytest.raises(BackupRefused, match=r"does not match its checksum.*nothing was restored"):
            await restore(engine, DatasetStore(empty.resolved_storage_root), backups)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    finally:
        await engine.dispose()
    assert tables == []
    assert not DatasetStore(empty.resolved_storage_root).exists("default", "docs")
    assert backups.keys(BACKUP_MANIFEST) == [BACKUP_MANIFEST]


async def test_embedded_mode_backs_up_to_s3_sealed_and_restores(
    embedded_settings: Settings,
    s3_service: S3Service,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_service.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_service.secret_access_key)
    sealing = {
        "backup_s3_endpoint": s3_service.endpoint,
        "backup_s3_region": "us-east-1",
        "backup_encryption_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
    }
    settings = embedded_settings.model_copy(update=sealing)
    destination = f"s3://{s3_service.bucket}/{run_id}/drill"
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(4, DIMS)).astype(np.float32)
    async with serving(create_app(settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": DIMS})
        assert created.status_code == 200, created.text
        records = [
            {"id": f"v{i}", "vector": rng.normal(size=DIMS).tolist(), "metadata": {"i": i}} for i in range(80)
        ]
        upserted = await client.post("/api/v1/datasets/docs/vectors?wait=true", json={"vectors": records})
        assert upserted.status_code == 200, upserted.text
        made = await client.post("/api/v1/admin/keys", json={"tenant": "default", "roles": ["reader"]})
        reader = made.json()["key"]
        before = await answers(client, reader, "docs", queries)
    made_backup = await tributary_command(settings, "backup", destination)
    assert made_backup.returncode == 0, made_backup.stderr
    # Sealed: nothing readable leaves the process.
    plain = S3Store(s3_service.bucket, f"{run_id}/drill", s3_service.endpoint, "us-east-1")
    assert all(plain.get(key).startswith(SEALED_MAGIC) for key in plain.keys(""))

    fresh = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("fresh") / "data", **sealing
    )
    restored = await tributary_command(fresh, "restore", destination)
    assert restored.returncode == 0, restored.stderr
    async with serving(create_app(fresh)) as client:
        assert await answers(client, reader, "docs", queries) == before
