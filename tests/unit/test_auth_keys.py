"""API keys: their format, that only a hash is kept, and that a key is checked against that hash alone."""

from __future__ import annotations

import hashlib

import pytest

from tributary.auth.keys import hash_secret, matches, new_key, parse


def test_new_key_has_the_documented_format() -> None:
    key, prefix, stored = new_key()
    scheme, key_prefix, secret = key.split("_", 2)
    assert (scheme, key_prefix) == ("trb", prefix)
    assert len(prefix) == 8 and set(prefix) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert len(secret) == 43  # 32 random bytes, urlsafe base64 without padding
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored and key not in stored


def test_keys_are_unique() -> None:
    made = [new_key() for _ in range(200)]
    assert len({k.key for k in made}) == len({k.prefix for k in made}) == len({k.hash for k in made}) == 200


def test_parse_round_trips_what_new_key_makes() -> None:
    for _ in range(200):  # the secret's alphabet has "_" and "-": the split must not depend on luck
        key, prefix, stored = new_key()
        parsed = parse(key)
        assert parsed is not None and parsed.prefix == prefix
        assert matches(parsed.secret, stored)


SECRET = "A" * 43


@pytest.mark.parametrize(
    "key",
    [
        "",
        "trb_",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",  # a JWT
        f"xyz_abcdefgh_{SECRET}",  # another scheme
        f"trb_ABCDEFGH_{SECRET}",  # the prefix is lower-case base32
        f"trb_abcdefg1_{SECRET}",  # 1 is not base32
        f"trb_abcdefg_{SECRET}",  # short prefix
        f"trb_abcdefgh_{SECRET[:-1]}",  # truncated secret
        f"trb_abcdefgh_{SECRET}A",  # overlong secret
        f"trb_abcdefgh_{SECRET[:-1]}=",  # padding is not part of the alphabet
        f"trb_abcdefgh_{SECRET}\n",
        f" trb_abcdefgh_{SECRET}",
    ],
)
def test_parse_refuses_what_is_not_a_key(key: str) -> None:
    assert parse(key) is None


def test_matches_only_the_right_secret() -> None:
    key, _, stored = new_key()
    parsed = parse(key)
    assert parsed is not None
    assert matches(parsed.secret, stored)
    assert not matches(parsed.secret[:-1] + ("B" if parsed.secret[-1] != "B" else "C"), stored)
    assert not matches(parsed.secret, hash_secret("other"))
    assert not matches(parsed.secret, "")
