"""Disaster recovery of a whole deployment (`tributary backup` and `tributary restore`, entrypoints/cli.py): every
dataset of every tenant and the SQL catalog, copied to a backup store (a folder or `s3://bucket/prefix`, sealed
when backups are, tributary/backup_store.py) and put back into a fresh deployment.

A backup's layout in its store:
- `<tenant>/<dataset>/<backup id>/`: each dataset at its last commit, as a snapshot (tributary/snapshots.py:
  parts and their manifest with sizes and sha256);
- `_sql/<table>.jsonl`: every row of the catalog's tables (keys, operations, audit, datasets, dead letters,
  snapshot schedules), one JSON object a line, as SQLAlchemy reads them: portable between PostgreSQL and SQLite;
- `_backup.json`, written last: the Alembic revision of the dumped schema, and each dataset's manifest and each
  table's dump with its size and sha256. A backup exists once it does. (`_` starts no tenant name.)

A restore reads the backup's manifest and checks every object against its size and sha256 before it changes
anything; then it migrates the database to the backup's revision, creates each dataset with its rows (one
commit each, the ledger of the original kept), replaces the tables' rows and migrates to the code's revision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import DateTime, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tributary.backup_store import BackupStore, ObjectMissing, ObjectUnreadable, SealedStore
from tributary.db.migrate import alembic_config, upgrade
from tributary.db.models import (
    ApiKeyRow,
    AuditRow,
    DatasetRow,
    DeadLetterRow,
    OperationRow,
    SnapshotScheduleRow,
    UTCDateTime,
)
from tributary.db.session import make_sessionmaker
from tributary.failures import Conflict
from tributary.snapshots import (
    MANIFEST,
    SnapshotCorrupt,
    SnapshotFile,
    SnapshotManifest,
    described,
    folder,
    verified,
    verified_parts,
    write_snapshot,
)
from tributary.storage import Commit, DatasetStore

log = logging.getLogger(__name__)

BACKUP_MANIFEST = "_backup.json"
SQL_FOLDER = "_sql/"
# The catalog's tables worth keeping; the writer leases and embedded mode's logs belong to the running
# deployment, not to its data.
TABLES: tuple[Table, ...] = tuple(
    row.__table__  # type: ignore[misc]
    for row in (ApiKeyRow, OperationRow, AuditRow, DatasetRow, DeadLetterRow, SnapshotScheduleRow)
)


class DatasetBackup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    dataset: str
    manifest: SnapshotFile


class TableDump(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    rows: int
    dump: SnapshotFile


class BackupManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    backup_id: str
    created_at: datetime
    alembic_revision: str
    datasets: list[DatasetBackup]
    tables: list[TableDump]
    encrypted: bool


class BackupRefused(Conflict):
    """The backup or restore cannot start: nothing was written or changed."""


async def back_up(engine: AsyncEngine, store: DatasetStore, backups: BackupStore) -> BackupManifest:
    """Copy every catalogued dataset at its last commit, then the tables, then the manifest."""
    if backups.keys(BACKUP_MANIFEST):
        raise BackupRefused(f"{backups.describe()} already holds a backup: give an empty destination")
    async with engine.connect() as connection:
        revision = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
    if revision is None:
        raise BackupRefused("the database has no schema: nothing to back up")
    backup_id = str(uuid.uuid4())
    async with make_sessionmaker(engine)() as session:
        catalog = (await session.execute(select(DatasetRow.tenant, DatasetRow.name))).all()
    datasets: list[DatasetBackup] = []
    for tenant, dataset in catalog:
        if not await asyncio.to_thread(store.exists, tenant, dataset):
            log.warning("%s/%s is catalogued but has no data: not backed up", tenant, dataset)
            continue
        copied = await asyncio.to_thread(_back_up_dataset, backups, store, tenant, dataset, backup_id)
        datasets.append(
            DatasetBackup(
                tenant=tenant,
                dataset=dataset,
                manifest=described(
                    folder(tenant, dataset, backup_id) + MANIFEST, copied.model_dump_json().encode()
                ),
            )
        )
    tables = [await _dump(engine, backups, table) for table in TABLES]
    manifest = BackupManifest(
        backup_id=backup_id,
        created_at=datetime.now(UTC),
        alembic_revision=revision,
        datasets=datasets,
        tables=tables,
        encrypted=isinstance(backups, SealedStore),
    )
    await asyncio.to_thread(backups.put, BACKUP_MANIFEST, manifest.model_dump_json().encode())
    return manifest


def _back_up_dataset(
    backups: BackupStore, store: DatasetStore, tenant: str, dataset: str, backup_id: str
) -> SnapshotManifest:
    last = store.last_commit(tenant, dataset)
    return write_snapshot(
        backups, store, tenant, dataset, last.version, last, snapshot_id=backup_id, command_id=backup_id
    )


async def _dump(engine: AsyncEngine, backups: BackupStore, table: Table) -> TableDump:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(table))).mappings().all()
    lines = "".join(json.dumps(dict(row), default=_jsonable, ensure_ascii=False) + "\n" for row in rows)
    data = lines.encode()
    name = f"{SQL_FOLDER}{table.name}.jsonl"
    await asyncio.to_thread(backups.put, name, data)
    return TableDump(table=table.name, rows=len(rows), dump=described(name, data))


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


async def restore(engine: AsyncEngine, store: DatasetStore, backups: BackupStore) -> BackupManifest:
    """Verify the whole backup, then put its datasets and tables into this (fresh) deployment."""
    try:
        manifest, snapshots, dumps = await asyncio.to_thread(_verify, backups)
    except SnapshotCorrupt as exc:
        raise BackupRefused(f"{exc}; nothing was restored") from exc
    revisions = ScriptDirectory.from_config(alembic_config())
    if manifest.alembic_revision not in {script.revision for script in revisions.walk_revisions()}:
        raise BackupRefused(
            f"the backup's schema is at revision {manifest.alembic_revision}, which this version of Tributary "
            "does not know: restore it with the version that made it, or a newer one"
        )
    existing = [
        f"{s.tenant}/{s.dataset}"
        for s in snapshots
        if await asyncio.to_thread(store.exists, s.tenant, s.dataset)
    ]
    if existing:
        raise BackupRefused(f"datasets exist already: {', '.join(existing)}; restore into a fresh deployment")
    try:
        await upgrade(engine, manifest.alembic_revision)
    except CommandError as exc:
        raise BackupRefused(
            f"the database cannot take the backup's schema (revision {manifest.alembic_revision}): {exc}; "
            "restore into an empty database"
        ) from exc
    versions: dict[tuple[str, str], tuple[str, int]] = {}
    for snapshot in snapshots:
        versions[(snapshot.tenant, snapshot.dataset)] = await asyncio.to_thread(
            _restore_dataset, backups, store, snapshot
        )
    async with engine.begin() as connection:
        for table in TABLES:
            await connection.execute(delete(table))
            rows = [_row(table, json.loads(line)) for line in dumps[table.name].decode().splitlines()]
            if rows:
                await connection.execute(insert(table), rows)
        # The datasets were committed again: their versions are new.
        for (tenant, dataset), (version, count) in versions.items():
            await connection.execute(
                update(DatasetRow)
                .where(DatasetRow.tenant == tenant, DatasetRow.name == dataset)
                .values(version=version, vector_count=count)
            )
    await upgrade(engine)
    return manifest


def _verify(backups: BackupStore) -> tuple[BackupManifest, list[SnapshotManifest], dict[str, bytes]]:
    """The manifest, each dataset's manifest and each table's dump, every object (the datasets' parts too)
    checked against its size and sha256. Reads everything once; changes nothing."""
    try:
        manifest = BackupManifest.model_validate_json(backups.get(BACKUP_MANIFEST))
    except ObjectMissing:
        raise BackupRefused(f"no backup in {backups.describe()} ({BACKUP_MANIFEST} is missing)") from None
    except (ObjectUnreadable, ValidationError) as exc:
        raise SnapshotCorrupt(f"the backup's manifest cannot be read: {exc}") from exc
    snapshots = [
        SnapshotManifest.model_validate_json(verified(backups, "", entry.manifest, manifest.backup_id))
        for entry in manifest.datasets
    ]
    for snapshot in snapshots:
        base = folder(snapshot.tenant, snapshot.dataset, snapshot.snapshot_id)
        for part in snapshot.parts:
            for file in part.files:
                verified(backups, base, file, snapshot.snapshot_id)
    dumps = {dump.table: verified(backups, "", dump.dump, manifest.backup_id) for dump in manifest.tables}
    return manifest, snapshots, dumps


def _restore_dataset(
    backups: BackupStore, store: DatasetStore, snapshot: SnapshotManifest
) -> tuple[str, int]:
    store.create_with_rows(
        snapshot.tenant,
        snapshot.dataset,
        snapshot.dataset_spec,
        verified_parts(backups, snapshot),
        Commit(snapshot.ledger, []),
    )
    last = store.last_commit(snapshot.tenant, snapshot.dataset)
    log.info("restored %s/%s: %d vectors", snapshot.tenant, snapshot.dataset, last.count)
    return last.version, last.count


def _row(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """A dumped row as its table takes it: timestamps back from their ISO form."""
    return {
        name: datetime.fromisoformat(value)
        if isinstance(value, str) and isinstance(table.c[name].type, UTCDateTime | DateTime)
        else value
        for name, value in values.items()
    }
