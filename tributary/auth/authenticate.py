"""Who is calling: the bearer credential of a request, an API key (looked up in SQL, then kept for
`key_cache_ttl_s`: a revoked key is refused by every replica within that) or a JWT; and the bootstrap admin key.

While the database does not answer, a key verified within `key_grace_s` before is still accepted (reads served
from memory go on); any other key is a 503, not a 401: it may well be valid."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tributary.auth import keys
from tributary.auth.jwt import InvalidToken
from tributary.auth.principal import Principal
from tributary.db.models import ApiKeyRow
from tributary.failures import Unauthenticated
from tributary.resilience import Unavailable
from tributary.services import Services
from tributary.settings import Settings

log = logging.getLogger(__name__)

BOOTSTRAP_ID = "bootstrap"


async def authenticate(header: str, services: Services) -> Principal:
    """The principal of an `Authorization` header's value."""
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("send `Authorization: Bearer <API key or token>`")
    credential = credential.strip()
    parsed = keys.parse(credential)
    if parsed is not None:
        cache = services.key_cache
        digest = keys.hash_secret(credential)
        principal = cache.get(digest)
        if principal is None:
            generation = cache.generation
            try:
                principal = await _look_up(services.sessions, parsed)
            except Unavailable:
                stale = cache.stale(digest)
                if stale is None:
                    raise
                return stale
            cache.put(digest, principal, generation)
        return principal
    verifier = services.jwt_verifier
    if verifier is None:
        raise Unauthenticated("not an API key, and this deployment accepts no tokens")
    try:
        return await verifier.verify(credential)
    except InvalidToken as exc:
        raise Unauthenticated(f"token refused: {exc}") from None


async def _look_up(sessions: async_sessionmaker[AsyncSession], parsed: keys.ParsedKey) -> Principal:
    async with sessions() as session:
        row = await session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.prefix == parsed.prefix, ApiKeyRow.revoked_at.is_(None))
        )
    if row is None or not keys.matches(parsed.secret, row.hash):
        raise Unauthenticated("unknown or revoked API key")
    return Principal(
        subject=row.id,
        tenant=row.tenant,
        roles=frozenset(row.roles),
        datasets=frozenset(row.datasets) if row.datasets is not None else None,
        via="key",
        operator=row.id == BOOTSTRAP_ID,
    )


async def issue_key(
    session: AsyncSession, tenant: str, roles: Iterable[str], datasets: Iterable[str] | None = None
) -> tuple[str, str]:
    """Store a new API key and return its id and the key itself, which is shown this once (only its hash is
    kept). Used by the key routes and by `tributary keys create` on the server's machine."""
    made = keys.new_key()
    row = ApiKeyRow(
        id=str(uuid.uuid4()),
        prefix=made.prefix,
        hash=made.hash,
        tenant=tenant,
        roles=sorted(set(roles)),
        datasets=sorted(set(datasets)) if datasets is not None else None,
    )
    session.add(row)
    await session.commit()
    return row.id, made.key


async def install_bootstrap_key(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> str | None:
    """Register TRIBUTARY_ADMIN_KEY as the operator key of tenant `default`. Where it is unset and nothing is
    registered yet (embedded mode's first start), make one: it is returned once, to be printed, and never again."""
    try:
        return await _install_bootstrap_key(sessions, settings)
    except IntegrityError:
        # Replicas starting together race to insert the row; the loser finds it on a second pass.
        return await _install_bootstrap_key(sessions, settings)


async def _install_bootstrap_key(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> str | None:
    async with sessions.begin() as session:
        row = await session.get(ApiKeyRow, BOOTSTRAP_ID)
        if settings.admin_key is not None:
            parsed = keys.parse(settings.admin_key.get_secret_value())
            assert parsed is not None  # the setting's validator checked the format
            fields = {"prefix": parsed.prefix, "hash": keys.hash_secret(parsed.secret), "revoked_at": None}
            if row is None:
                session.add(
                    ApiKeyRow(id=BOOTSTRAP_ID, tenant=settings.default_tenant, roles=["admin"], **fields)
                )
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
            return None
        if row is not None:
            return None
        made = keys.new_key()
        session.add(
            ApiKeyRow(
                id=BOOTSTRAP_ID,
                prefix=made.prefix,
                hash=made.hash,
                tenant=settings.default_tenant,
                roles=["admin"],
            )
        )
        return made.key
