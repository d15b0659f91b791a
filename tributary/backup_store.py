"""Where snapshots are kept: a local folder or an S3 bucket (AWS or any S3-compatible store), optionally sealed
with AES-256-GCM before anything leaves the process.

Objects are whole byte strings under `/`-separated keys. Synchronous (boto3 and file I/O); async callers run
them in a worker thread. Credentials for S3 come from boto3's standard chain (the AWS_* variables, the shared
files, an instance or pod role): Tributary never reads, stores or logs them.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tributary.resilience import Unavailable
from tributary.settings import Settings

NONCE_BYTES = 12
SEALED_MAGIC = b"TRBSEAL1"


class ObjectMissing(Exception):
    """No object under that key."""


class ObjectUnreadable(Exception):
    """The object is there but cannot be opened: not sealed with the configured key, or altered since."""


class BackupStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`, sorted."""
        ...

    def delete(self, keys: list[str]) -> None: ...

    def describe(self) -> str:
        """Where objects go, for logs and errors (never a credential)."""
        ...


class FolderStore:
    """A local folder; each object is written to a temporary file and renamed, so a reader never sees half."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the backup folder")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".part-", delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def keys(self, prefix: str) -> list[str]:
        root = self.root.resolve()
        # Only the folder the prefix names is walked, not every tenant's snapshots.
        under = self._path(prefix.rpartition("/")[0]) if "/" in prefix else root
        if not under.is_dir():
            return []
        found = (p.relative_to(root).as_posix() for p in under.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not Path(k).name.startswith(".part-"))

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.root)


class S3Store:
    """A bucket and a key prefix. `endpoint` points at an S3-compatible store (S3Proxy, MinIO); without it,
    AWS itself (or AWS_ENDPOINT_URL, which boto3 reads)."""

    def __init__(self, bucket: str, prefix: str, endpoint: str | None, region: str | None) -> None:
        # Only a deployment that backs up to S3 pays for importing them.
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._endpoint = endpoint
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(
                connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 3}
            ),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """A store that does not answer (or no credential in the chain) is a 503 to a client and a retry to the
        applier, not a crash; the reason names the store, never a credential."""
        from botocore.exceptions import BotoCoreError

        try:
            yield
        except BotoCoreError as exc:
            raise Unavailable("backup store", f"{self.describe()}: {type(exc).__name__}") from exc

    def put(self, key: str, data: bytes) -> None:
        with self._answering():
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        with self._answering():
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey:
                raise ObjectMissing(key) from None
            return bytes(answer["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        strip = len(self._key(""))
        found: list[str] = []
        with self._answering():
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            ):
                found.extend(str(item["Key"])[strip:] for item in page.get("Contents", []))
        return sorted(found)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's limit per DeleteObjects request
            chunk = keys[start : start + 1000]
            with self._answering():
                self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
                )

    def describe(self) -> str:
        where = f" at {self._endpoint}" if self._endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"


class SealedStore:
    """AES-256-GCM around another store: a random nonce per object, and the object's key as associated data,
    so an object moved under another key (another snapshot's part) fails to open as surely as an altered one."""

    def __init__(self, inner: BackupStore, key: bytes) -> None:
        self._inner, self._aead = inner, AESGCM(key)

    def put(self, key: str, data: bytes) -> None:
        nonce = secrets.token_bytes(NONCE_BYTES)
        self._inner.put(key, SEALED_MAGIC + nonce + self._aead.encrypt(nonce, data, key.encode()))

    def get(self, key: str) -> bytes:
        sealed = self._inner.get(key)
        if not sealed.startswith(SEALED_MAGIC):
            raise ObjectUnreadable(f"{key} is not encrypted, but backups are set to be")
        nonce = sealed[len(SEALED_MAGIC) : len(SEALED_MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[len(SEALED_MAGIC) + NONCE_BYTES :], key.encode())
        except InvalidTag:
            raise ObjectUnreadable(
                f"{key} does not decrypt with the configured key (another key, or altered since)"
            ) from None

    def keys(self, prefix: str) -> list[str]:
        return self._inner.keys(prefix)

    def delete(self, keys: list[str]) -> None:
        self._inner.delete(keys)

    def describe(self) -> str:
        return f"{self._inner.describe()} (AES-256-GCM)"


def open_backup_store(settings: Settings) -> BackupStore:
    """The backup store the settings name (one per process and configuration: S3 clients are reused)."""
    return _store(
        settings.resolved_backup_url,
        settings.backup_s3_endpoint,
        settings.backup_s3_region,
        settings.backup_encryption_key_bytes,
    )


@cache
def _store(url: str, endpoint: str | None, region: str | None, key: bytes | None) -> BackupStore:
    store: BackupStore
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        store = S3Store(bucket, prefix, endpoint, region)
    else:
        store = FolderStore(Path(url))
    return SealedStore(store, key) if key is not None else store
