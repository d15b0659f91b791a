"""API key management: create (the key is shown once), list, revoke. Keys are stored as the hash of their
secret; a revoked key is refused at once by the process that revoked it, and by every other one within
`key_cache_ttl_s` (how long a process trusts a key it has verified)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from events.names import Name
from schemas.requests import RequestModel
from tributary.auth.authenticate import BOOTSTRAP_ID, issue_key
from tributary.auth.principal import Principal, Role, authorize
from tributary.db.models import ApiKeyRow
from tributary.deps import CurrentPrincipal, KeyCacheDep, SessionDep, allowed, tenant_wide
from tributary.errors import AUTHENTICATED, responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/admin/keys",
    tags=["keys"],
    route_class=JSONRoute,
    responses=AUTHENTICATED | responses(413),
    # Key management is rate-limited like any write, and always tenant-wide: a credential limited to some
    # datasets manages no keys. Each route then checks the tenant of the keys it touches.
    dependencies=[Depends(allowed("manage_keys")), Depends(tenant_wide("manage_keys"))],
)


class CreateKey(RequestModel):
    tenant: Name
    roles: list[Role] = Field(min_length=1)
    datasets: list[Name] | None = Field(default=None, description="Limit the key to these datasets")


class CreatedKey(BaseModel):
    id: str
    key: str = Field(description="Shown this once; only its hash is kept")


class KeyView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str
    tenant: str
    roles: list[str]
    datasets: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class KeyList(BaseModel):
    keys: list[KeyView]


def _may_manage(principal: Principal, tenant: str) -> None:
    decision = authorize(principal, "manage_keys", tenant)
    if not decision:
        raise HTTPException(status.HTTP_403_FORBIDDEN, decision.reason)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreatedKey)
async def create_key(body: CreateKey, principal: CurrentPrincipal, session: SessionDep) -> CreatedKey:
    _may_manage(principal, body.tenant)
    key_id, key = await issue_key(session, body.tenant, body.roles, body.datasets)
    return CreatedKey(id=key_id, key=key)


@router.get("", response_model=KeyList)
async def list_keys(
    principal: CurrentPrincipal,
    session: SessionDep,
    tenant: Annotated[Name | None, Query(description="Another tenant's keys (the operator key only)")] = None,
) -> KeyList:
    tenant = tenant or principal.tenant
    _may_manage(principal, tenant)
    rows = await session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.tenant == tenant).order_by(ApiKeyRow.created_at)
    )
    return KeyList(keys=[KeyView.model_validate(row) for row in rows])


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(404))
async def revoke_key(
    key_id: str, principal: CurrentPrincipal, session: SessionDep, key_cache: KeyCacheDep
) -> None:
    row = await session.get(ApiKeyRow, key_id)
    # Another tenant's key is "not found", as if it did not exist.
    if row is None or not authorize(principal, "manage_keys", row.tenant):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"key {key_id!r} not found")
    if row.id == BOOTSTRAP_ID and not principal.operator:
        # Revoking it would lock the deployment out of managing other tenants' keys.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only the operator key itself may revoke the operator key"
        )
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.commit()
    key_cache.forget(key_id)
