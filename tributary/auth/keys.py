"""API keys: `trb_<prefix>_<secret>`, shown once, stored as the prefix (to find the row) and a hash.

The secret is 32 random bytes (256 bits), so the hash is a plain SHA-256. Slow hashes (argon2, bcrypt) exist to
make guessing a low-entropy password expensive; nobody can enumerate 2^256 secrets however fast the hash is, and
a fast hash keeps key checks cheap on every request. The comparison is constant-time all the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

SCHEME = "trb"
SECRET_BYTES = 32
# 5 random bytes are 8 base32 characters without padding; the prefix column is unique, a clash fails the insert.
PREFIX_BYTES = 5
KEY_PATTERN = re.compile(rf"{SCHEME}_(?P<prefix>[a-z2-7]{{8}})_(?P<secret>[A-Za-z0-9_-]{{43}})")


class NewKey(NamedTuple):
    key: str
    prefix: str
    hash: str


class ParsedKey(NamedTuple):
    prefix: str
    secret: str


def new_key() -> NewKey:
    prefix = base64.b32encode(secrets.token_bytes(PREFIX_BYTES)).decode().lower()
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewKey(key=f"{SCHEME}_{prefix}_{secret}", prefix=prefix, hash=hash_secret(secret))


def parse(key: str) -> ParsedKey | None:
    """The prefix and secret of a well-formed key, None for anything else (a JWT, a typo, a truncated key)."""
    found = KEY_PATTERN.fullmatch(key)
    if found is None:
        return None
    return ParsedKey(prefix=found["prefix"], secret=found["secret"])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
