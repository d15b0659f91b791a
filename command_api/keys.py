"""The key service: create (the key is shown once), list, revoke, whatever the transport. Keys are stored as the
hash of their secret; a revoked key is refused at once by the process that revoked it, and by every other one
within `key_cache_ttl_s` (how long a process trusts a key it has verified)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.keys import CreatedKey, CreateKey, KeyView
from tributary.auth.authenticate import BOOTSTRAP_ID, issue_key
from tributary.auth.key_cache import KeyCache
from tributary.auth.principal import Principal, authorize
from tributary.db.models import ApiKeyRow
from tributary.failures import Forbidden, NotFound


def _may_manage(principal: Principal, tenant: str) -> None:
    decision = authorize(principal, "manage_keys", tenant)
    if not decision:
        raise Forbidden(decision.reason)


async def create_key(session: AsyncSession, principal: Principal, body: CreateKey) -> CreatedKey:
    _may_manage(principal, body.tenant)
    key_id, key = await issue_key(session, body.tenant, body.roles, body.datasets)
    return CreatedKey(id=key_id, key=key)


async def list_keys(session: AsyncSession, principal: Principal, tenant: str | None) -> list[KeyView]:
    tenant = tenant or principal.tenant
    _may_manage(principal, tenant)
    rows = await session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.tenant == tenant).order_by(ApiKeyRow.created_at)
    )
    return [KeyView.model_validate(row) for row in rows]


async def revoke_key(session: AsyncSession, principal: Principal, key_cache: KeyCache, key_id: str) -> None:
    row = await session.get(ApiKeyRow, key_id)
    # Another tenant's key is "not found", as if it did not exist.
    if row is None or not authorize(principal, "manage_keys", row.tenant):
        raise NotFound(f"key {key_id!r} not found")
    if row.id == BOOTSTRAP_ID and not principal.operator:
        # Revoking it would lock the deployment out of managing other tenants' keys.
        raise Forbidden("only the operator key itself may revoke the operator key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.commit()
    key_cache.forget(key_id)
