"""The backup stores snapshots go to: a local folder and a real S3-compatible store (S3Proxy from
deploy/local/services.sh), plain and sealed with AES-256-GCM."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import S3Service
from tributary.backup_store import (
    BackupStore,
    FolderStore,
    ObjectMissing,
    ObjectUnreadable,
    S3Store,
    SealedStore,
)
from tributary.settings import Settings

KEY = os.urandom(32)


@pytest.fixture
def s3_credentials(s3_service: S3Service, monkeypatch: pytest.MonkeyPatch) -> S3Service:
    # The standard chain's variables, as a deployment sets them; monkeypatch takes them away after the test.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_service.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_service.secret_access_key)
    return s3_service


@pytest.fixture(params=["folder", "s3"])
def plain(request: pytest.FixtureRequest, tmp_path: Path, run_id: str) -> Iterator[BackupStore]:
    if request.param == "folder":
        yield FolderStore(tmp_path / "backups")
        return
    s3: S3Service = request.getfixturevalue("s3_credentials")
    store = S3Store(s3.bucket, f"{run_id}/backups", s3.endpoint, "us-east-1")
    yield store
    store.delete(store.keys(""))


def test_objects_round_trip_and_list_by_prefix(plain: BackupStore) -> None:
    plain.put("default/docs/s1/manifest.json", b"{}")
    plain.put("default/docs/s1/vectors-00000.npy", b"\x00" * 1000)
    plain.put("default/other/s2/manifest.json", b"{}")
    assert plain.get("default/docs/s1/vectors-00000.npy") == b"\x00" * 1000
    assert plain.keys("default/docs/") == [
        "default/docs/s1/manifest.json",
        "default/docs/s1/vectors-00000.npy",
    ]
    plain.delete(plain.keys("default/docs/"))
    assert plain.keys("default/") == ["default/other/s2/manifest.json"]
    with pytest.raises(ObjectMissing):
        plain.get("default/docs/s1/manifest.json")


def test_a_sealed_object_is_not_readable_without_the_key_and_refuses_one_flipped_byte(
    plain: BackupStore,
) -> None:
    sealed = SealedStore(plain, KEY)
    sealed.put("t/d/s/records-00000.json", b'{"ids": ["a"]}')
    assert sealed.get("t/d/s/records-00000.json") == b'{"ids": ["a"]}'
    stored = plain.get("t/d/s/records-00000.json")
    assert b'"ids"' not in stored  # nothing readable leaves the process
    flipped = bytearray(stored)
    flipped[-1] ^= 1
    plain.put("t/d/s/records-00000.json", bytes(flipped))
    with pytest.raises(ObjectUnreadable, match="altered"):
        sealed.get("t/d/s/records-00000.json")
    # Moved under another key, an intact object does not open either (its key is the associated data).
    plain.put("t/d/other/records-00000.json", stored)
    with pytest.raises(ObjectUnreadable):
        sealed.get("t/d/other/records-00000.json")
    plain.put("t/d/s/plain.json", b"{}")
    with pytest.raises(ObjectUnreadable, match="not encrypted"):
        sealed.get("t/d/s/plain.json")
    SealedStore(plain, os.urandom(32)).put("t/d/s/x", b"1")
    with pytest.raises(ObjectUnreadable, match="configured key"):
        sealed.get("t/d/s/x")


def test_a_folder_key_cannot_leave_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaves"):
        FolderStore(tmp_path / "backups").put("../outside", b"x")


def test_the_encryption_key_setting_is_256_bits_of_base64_and_never_shown() -> None:
    good = base64.b64encode(KEY).decode()
    assert Settings(_env_file=None, backup_encryption_key=good).backup_encryption_key_bytes == KEY  # type: ignore[call-arg]
    for bad in ("short", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(ValueError, match="32 random bytes in base64") as raised:
            Settings(_env_file=None, backup_encryption_key=bad)  # type: ignore[call-arg]
        assert bad not in str(raised.value)


def test_the_backup_store_defaults_to_a_folder_beside_the_data(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.resolved_backup_url == str((tmp_path / "backups").resolve())
