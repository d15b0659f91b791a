"""JWT verification: the algorithm comes from settings and never from the token, so `none` and HS/RS confusion
(a public key used as an HMAC secret) are refused before any key is looked at. `exp`, `iss`, `aud` and `sub`
are required, `nbf` is checked when present; the claims map to a Principal.

Every failure raises InvalidToken with a fixed reason that is safe to show: never the token or a claim value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from events.names import NAME_PATTERN
from tributary.auth.principal import ROLES, Principal, Role
from tributary.settings import JwtAlgorithm, Settings

log = logging.getLogger(__name__)

REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
JWKS_CACHE_S = 300
JWKS_TIMEOUT_S = 5.0
# An unknown `kid` refetches the JWKS at most this often, so junk tokens cannot hammer the identity provider.
JWKS_REFRESH_COOLDOWN_S = 30.0
_NAME = re.compile(NAME_PATTERN)


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeys(Protocol):
    async def key_for(self, kid: str | None) -> PyJWK | bytes: ...


class SharedSecret:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    async def key_for(self, kid: str | None) -> bytes:
        return self._secret


class KeyFile:
    """A JWKS file, read once: rotating its keys takes a restart."""

    def __init__(self, path: Path, algorithm: JwtAlgorithm) -> None:
        found = PyJWKSet.from_dict(json.loads(path.read_text()))
        self._keys = [
            key
            for key in found.keys
            if key.algorithm_name == algorithm and key.public_key_use in ("sig", None)
        ]
        if not self._keys:
            raise ValueError(f"{path} has no {algorithm} signing key")

    async def key_for(self, kid: str | None) -> PyJWK:
        if kid is None and len(self._keys) == 1:
            return self._keys[0]
        for key in self._keys:
            if key.key_id == kid:
                return key
        raise InvalidToken("unknown signing key")


class KeyUrl:
    """A JWKS endpoint, cached; a token naming an unknown `kid` refetches it (at most once per cooldown)."""

    def __init__(self, url: str) -> None:
        self._client = PyJWKClient(
            url, lifespan=JWKS_CACHE_S, timeout=JWKS_TIMEOUT_S, cooldown_duration=JWKS_REFRESH_COOLDOWN_S
        )

    async def key_for(self, kid: str | None) -> PyJWK:
        if kid is None:
            raise InvalidToken("missing key id (kid)")
        try:
            # PyJWKClient fetches with urllib: off the event loop.
            return await asyncio.to_thread(self._client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("JWKS endpoint unreachable: %s", exc)
            raise InvalidToken("signing keys unavailable") from None
        except jwt.PyJWKClientError:
            raise InvalidToken("unknown signing key") from None
        except (jwt.PyJWTError, ValueError) as exc:  # not JSON, or no usable key in it
            log.warning("JWKS endpoint answered no usable key set: %s", exc)
            raise InvalidToken("signing keys unavailable") from None


def signing_keys(settings: Settings) -> SigningKeys:
    if settings.jwt_algorithm == "HS256":
        assert settings.jwt_secret is not None  # the settings' validator ensures it
        return SharedSecret(settings.jwt_secret.get_secret_value().encode())
    assert settings.jwt_algorithm is not None and settings.jwt_jwks is not None
    if settings.jwt_jwks.startswith(("http://", "https://")):
        return KeyUrl(settings.jwt_jwks)
    return KeyFile(Path(settings.jwt_jwks), settings.jwt_algorithm)


# PyJWT's errors, most specific first, and what the caller is told.
REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "unusable signing key"),
    (jwt.PyJWKError, "unusable signing key"),
]


class JwtVerifier:
    def __init__(self, settings: Settings, keys: SigningKeys) -> None:
        assert settings.jwt_algorithm is not None
        self._settings = settings
        self._algorithm: JwtAlgorithm = settings.jwt_algorithm
        self._keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        """None when JWTs are not configured; reads a JWKS file now, so a bad one fails at startup."""
        if settings.jwt_algorithm is None:
            return None
        return cls(settings, signing_keys(settings))

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != self._algorithm:
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        key = await self._keys.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_s,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim: {exc.claim}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("invalid claim: sub")
        return Principal(
            subject=subject,
            tenant=_name(claims.get(self._settings.jwt_tenant_claim), self._settings.jwt_tenant_claim),
            roles=_roles(claims.get(self._settings.jwt_roles_claim)),
            datasets=_datasets(
                claims.get(self._settings.jwt_datasets_claim), self._settings.jwt_datasets_claim
            ),
            via="jwt",
        )


def _reason(exc: Exception) -> str:
    for kind, reason in REASONS:
        if isinstance(exc, kind):
            return reason
    return "malformed token"


def _name(value: object, claim: str) -> str:
    if value is None:
        raise InvalidToken(f"missing claim: {claim}")
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidToken(f"invalid claim: {claim}")
    return value


def _roles(value: object) -> frozenset[Role]:
    """Our roles among the claim's, which may be a list or a space-separated string (like OAuth scopes);
    an identity provider's other roles are ignored, and no role at all leaves a principal that may do nothing."""
    names = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(role for role in ROLES if role in names)


def _datasets(value: object, claim: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidToken(f"invalid claim: {claim}")
    return frozenset(_name(name, claim) for name in value)
