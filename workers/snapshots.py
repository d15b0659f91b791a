"""The applier's snapshot handlers: copy a dataset at a tagged version to the backup store, delete a snapshot,
restore one. Plain functions over the write model, called by `workers/applier.py` in command order, so a
snapshot reflects exactly the commands before it and a restore is never mixed with the writes around it.

Each is idempotent, because delivery is at least once: a snapshot whose manifest exists is announced again; a
deleted one is deleted again (nothing happens); a restore recorded in the dataset's ledger is announced again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from events import (
    CreateSnapshot,
    DeleteSnapshot,
    RestoreSnapshot,
    SnapshotCreated,
    SnapshotCreatedPayload,
    SnapshotDeleted,
    SnapshotDeletedPayload,
    SnapshotRestored,
    SnapshotRestoredPayload,
    event_for,
)
from tributary.backup_store import BackupStore
from tributary.bus import ConsistencyToken
from tributary.snapshots import (
    MANIFEST,
    SnapshotCorrupt,
    SnapshotManifest,
    folder,
    get_manifest,
    list_manifests,
    tag_of,
    verified_parts,
    write_snapshot,
)
from tributary.storage import Commit, Committed, DatasetStore
from workers.rejection import Rejected

log = logging.getLogger(__name__)


def snapshot_id_of(command: CreateSnapshot) -> str:
    """A snapshot is named by the command that made it: the operation id its 202 answered."""
    return str(command.id)


def create_snapshot(
    command: CreateSnapshot, store: DatasetStore, position: ConsistencyToken | None = None
) -> SnapshotCreated:
    """Tag the dataset's last commit (the caller committed what was pending) and copy it, then apply the
    retention. The manifest goes last: until it exists, the snapshot does not. `position`: where the command is
    in the command log, recorded in the manifest."""
    backups = _backups(store)
    tenant, dataset, snapshot_id = command.tenant, command.dataset, snapshot_id_of(command)
    manifest = _manifest(backups, tenant, dataset, snapshot_id)
    if manifest is None:
        writer = store.writer(tenant, dataset)
        if writer is None:
            raise Rejected(f"dataset {dataset!r} does not exist", "not_found")
        version = writer.tag(tag_of(snapshot_id))
        manifest = write_snapshot(
            backups,
            store,
            tenant,
            dataset,
            tag_of(snapshot_id),
            Committed(version, writer.spec, writer.count, writer.ledger),
            snapshot_id=snapshot_id,
            command_id=str(command.id),
            log_position=None if position is None else str(position),
        )
        log.info(
            "snapshot %s of %s/%s: %d vectors at %s", snapshot_id, tenant, dataset, writer.count, version
        )
    pruned = _apply_retention(backups, store, command, manifest)
    return event_for(
        command,
        SnapshotCreated,
        SnapshotCreatedPayload(
            snapshot_id=snapshot_id,
            version=manifest.version,
            vector_count=manifest.vector_count,
            created_at=manifest.created_at,
            pruned=pruned,
        ),
    )


def _apply_retention(
    backups: BackupStore, store: DatasetStore, command: CreateSnapshot, newest: SnapshotManifest
) -> list[str]:
    keep_last, max_age_days = command.payload.keep_last, command.payload.max_age_days
    if keep_last is None and max_age_days is None:
        return []
    others = [
        m
        for m in list_manifests(backups, command.tenant, command.dataset)
        if m.snapshot_id != newest.snapshot_id
    ]
    doomed: list[SnapshotManifest] = []
    if keep_last is not None:
        # The new snapshot is one of the `keep_last`.
        doomed += others[: max(0, len(others) - (keep_last - 1))]
    if max_age_days is not None:
        oldest = newest.created_at - timedelta(days=max_age_days)
        doomed += [m for m in others if m.created_at < oldest and m not in doomed]
    for manifest in doomed:
        _remove(backups, store, command.tenant, command.dataset, manifest.snapshot_id)
    return sorted(m.snapshot_id for m in doomed)


def delete_snapshot(command: DeleteSnapshot, store: DatasetStore) -> SnapshotDeleted:
    _remove(_backups(store), store, command.tenant, command.dataset, command.payload.snapshot_id)
    return event_for(
        command, SnapshotDeleted, SnapshotDeletedPayload(snapshot_id=command.payload.snapshot_id)
    )


def _remove(backups: BackupStore, store: DatasetStore, tenant: str, dataset: str, snapshot_id: str) -> None:
    """The manifest first, so a deletion that stops half way leaves no listed snapshot with missing parts."""
    base = folder(tenant, dataset, snapshot_id)
    backups.delete([base + MANIFEST])
    backups.delete(backups.keys(base))
    writer = store.writer(tenant, dataset)
    if writer is not None:
        writer.untag(tag_of(snapshot_id))
    log.info("snapshot %s of %s/%s deleted", snapshot_id, tenant, dataset)


def restore_snapshot(command: RestoreSnapshot, store: DatasetStore) -> SnapshotRestored:
    """Change the target dataset in one DeepLake commit whose ledger carries the restore (and, over an existing
    dataset, the commands before it, so a redelivered earlier command is still recognised and never applied over
    the restored state). The snapshot is read a part at a time, each verified before it is written: a part that
    does not match undoes the parts written before it, and nothing changes."""
    backups = _backups(store)
    p = command.payload
    tenant, target, command_id = command.tenant, command.dataset, str(command.id)
    manifest = _manifest(backups, tenant, p.source_dataset, p.snapshot_id)
    if manifest is None:
        raise Rejected(
            f"snapshot {p.snapshot_id} of dataset {p.source_dataset!r} does not exist", "not_found"
        )
    spec = manifest.dataset_spec
    writer = store.writer(tenant, target)
    if writer is None or not writer.already_applied(command_id):
        if writer is not None and target != p.source_dataset:
            raise Rejected(
                f"dataset {target!r} already exists: restore into a new name, or over {p.source_dataset!r} itself",
                "conflict",
            )
        if writer is not None and writer.spec != spec:
            raise Rejected(
                f"dataset {target!r} was created again with another configuration since the snapshot; "
                "restore it into a new name",
                "conflict",
            )
        try:
            if writer is None:
                store.delete(tenant, target)  # a folder without a committed spec: a create that crashed
                commit = Commit([command_id], [str(command.operation)])
                store.create_with_rows(tenant, target, spec, verified_parts(backups, manifest), commit)
            else:
                writer.replace_all(verified_parts(backups, manifest))
        except SnapshotCorrupt as exc:
            raise Rejected(f"{exc}; nothing was restored") from exc
        if writer is None:
            writer = store.writer(tenant, target)
            if writer is None:
                raise RuntimeError(f"{tenant}/{target} was just created and cannot be opened")
        else:
            writer.applied(command)
            writer.commit()
        log.info(
            "restored snapshot %s of %s/%s into %s at %s",
            p.snapshot_id,
            tenant,
            p.source_dataset,
            target,
            writer.version,
        )
    return event_for(
        command,
        SnapshotRestored,
        SnapshotRestoredPayload(
            **spec.fields(),
            version=writer.version,
            dataset_id=writer.dataset_id,
            source_dataset=p.source_dataset,
            snapshot_id=p.snapshot_id,
            snapshot_version=manifest.version,
            vector_count=writer.count,
        ),
    )


def _manifest(backups: BackupStore, tenant: str, dataset: str, snapshot_id: str) -> SnapshotManifest | None:
    try:
        return get_manifest(backups, tenant, dataset, snapshot_id)
    except SnapshotCorrupt as exc:
        raise Rejected(f"{exc}; nothing was changed") from exc


def _backups(store: DatasetStore) -> BackupStore:
    if store.backups is None:
        raise RuntimeError("this applier has no backup store")
    return store.backups
