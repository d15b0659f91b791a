"""API key management over HTTP (command_api/keys.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from command_api import keys
from events.names import Name
from schemas.keys import CreatedKey, CreateKey, KeyList
from tributary.deps import CurrentPrincipal, KeyCacheDep, SessionDep, allowed, tenant_wide
from tributary.errors import AUTHENTICATED, responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/admin/keys",
    tags=["keys"],
    route_class=JSONRoute,
    responses=AUTHENTICATED | responses(413),
    # Key management is rate-limited like any write, and always tenant-wide: a credential limited to some
    # datasets manages no keys. Each call then checks the tenant of the keys it touches.
    dependencies=[Depends(allowed("manage_keys")), Depends(tenant_wide("manage_keys"))],
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreatedKey)
async def create_key(body: CreateKey, principal: CurrentPrincipal, session: SessionDep) -> CreatedKey:
    return await keys.create_key(session, principal, body)


@router.get("", response_model=KeyList)
async def list_keys(
    principal: CurrentPrincipal,
    session: SessionDep,
    tenant: Annotated[Name | None, Query(description="Another tenant's keys (the operator key only)")] = None,
) -> KeyList:
    return KeyList(keys=await keys.list_keys(session, principal, tenant))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(404))
async def revoke_key(
    key_id: str, principal: CurrentPrincipal, session: SessionDep, key_cache: KeyCacheDep
) -> None:
    await keys.revoke_key(session, principal, key_cache, key_id)
