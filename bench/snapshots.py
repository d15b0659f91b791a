"""Snapshot and restore throughput: the applier's handlers on DeepLake in a temp dir, to a local folder and to an
S3-compatible store (S3Proxy from deploy/local/services.sh), plain and sealed with AES-256-GCM.

    python -m bench.snapshots [--rows 100000] [--dims 384] [--s3-endpoint http://127.0.0.1:19000]

For S3 the credentials come from the standard AWS variables (`deploy/local/services.sh env` prints S3Proxy's).
Prints, per store: seconds, MB/s of snapshot bytes and vectors/s for a snapshot and for a restore into a new
dataset (which reads and verifies every object first).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from events import (
    Command,
    CommandRejected,
    CreateDataset,
    CreateDatasetPayload,
    CreateSnapshot,
    RestoreSnapshot,
    RestoreSnapshotPayload,
    UpsertVectors,
    UpsertVectorsPayload,
)
from tributary.backup_store import BackupStore, FolderStore, S3Store, SealedStore
from tributary.snapshots import get_manifest
from tributary.storage import DatasetStore
from workers.applier import apply_commands

BATCH = 10_000


def applied(store: DatasetStore, commands: list[Command]) -> None:
    for event in apply_commands(commands, store):
        if isinstance(event, CommandRejected):
            raise RuntimeError(event.payload.reason)


def measure(name: str, backups: BackupStore, rows: int, dims: int, work: Path) -> None:
    store = DatasetStore(str(work / uuid.uuid4().hex), backups=backups)
    applied(
        store, [CreateDataset(tenant="bench", dataset="src", payload=CreateDatasetPayload(dimensions=dims))]
    )
    rng = np.random.default_rng(0)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        payload = UpsertVectorsPayload(
            ids=[f"v{start + i}" for i in range(n)],
            vectors=rng.standard_normal((n, dims)).astype(np.float32),
            metadata=[{"i": start + i, "group": (start + i) % 10} for i in range(n)],
        )
        applied(store, [UpsertVectors(tenant="bench", dataset="src", payload=payload)])
    snapshot = CreateSnapshot(tenant="bench", dataset="src")
    began = time.perf_counter()
    applied(store, [snapshot])
    taken = time.perf_counter() - began
    manifest = get_manifest(backups, "bench", "src", str(snapshot.id))
    assert manifest is not None
    megabytes = manifest.size_bytes / 1e6
    payload = RestoreSnapshotPayload(source_dataset="src", snapshot_id=str(snapshot.id))
    began = time.perf_counter()
    applied(store, [RestoreSnapshot(tenant="bench", dataset="copy", payload=payload)])
    restored = time.perf_counter() - began
    for what, seconds in (("snapshot", taken), ("restore", restored)):
        print(
            f"{name:<22} {what:<8} {seconds:7.2f} s  {megabytes / seconds:7.1f} MB/s  "
            f"{rows / seconds:10,.0f} vectors/s  ({megabytes:.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--s3-endpoint", default=os.environ.get("TRIBUTARY_TEST_S3_ENDPOINT"))
    parser.add_argument("--s3-bucket", default=os.environ.get("TRIBUTARY_TEST_S3_BUCKET", "tributary"))
    args = parser.parse_args()
    key = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stores: list[tuple[str, BackupStore]] = [
            ("folder", FolderStore(work / "backups")),
            ("folder, sealed", SealedStore(FolderStore(work / "sealed"), key)),
        ]
        if args.s3_endpoint:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            s3 = S3Store(args.s3_bucket, prefix, args.s3_endpoint, "us-east-1")
            stores += [("s3proxy", s3), ("s3proxy, sealed", SealedStore(s3, key))]
        for name, backups in stores:
            measure(name, backups, args.rows, args.dims, work)
        if args.s3_endpoint:
            s3.delete(s3.keys(""))


if __name__ == "__main__":
    main()
