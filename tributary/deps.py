"""FastAPI dependencies shared by the command and query APIs, as typed aliases.

They are `async def` even where they do not await: FastAPI runs a plain `def` dependency in its thread pool,
and the hops cost about 1 ms a request on this machine (measured on a cached search).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from tributary.auth.authenticate import authenticate
from tributary.auth.key_cache import KeyCache
from tributary.auth.principal import Action, Principal, authorize
from tributary.auth.rate_limit import RateLimiter
from tributary.embedding import Embedders
from tributary.resilience import Unavailable
from tributary.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_embedders(request: Request) -> Embedders:
    embedders: Embedders = request.app.state.embedders
    return embedders


async def get_key_cache(request: Request) -> KeyCache:
    key_cache: KeyCache = request.app.state.key_cache
    return key_cache


async def get_principal(request: Request) -> Principal:
    principal = await authenticate(request)
    request.state.principal = principal  # for the audit record of this request
    return principal


async def get_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> str:
    # Every name a request uses is resolved within its credential's tenant: another tenant's dataset is not found.
    return principal.tenant


def allowed(action: Action) -> Callable[..., Awaitable[Principal]]:
    """A router dependency: the request's principal may do `action` on the path's dataset (the one place routes
    ask; `tributary.auth.principal.authorize` decides)."""

    async def check(
        request: Request, response: Response, principal: Annotated[Principal, Depends(get_principal)]
    ) -> Principal:
        dataset = request.path_params.get("dataset") or request.path_params.get("name")
        decision = authorize(principal, action, principal.tenant, dataset)
        if not decision:
            raise HTTPException(status.HTTP_403_FORBIDDEN, decision.reason)
        limiter: RateLimiter | None = request.app.state.rate_limiter
        if limiter is not None:
            rate = await limiter.hit(principal, "read" if action == "read" else "write")
            if not rate.checked and not rate.allowed:
                # Failing closed is not the client's fault: not a 429 that says it went too fast.
                raise Unavailable("Redis", "rate limits cannot be checked", rate.retry_after_s)
            if not rate.allowed:
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    "rate limit exceeded; retry later",
                    headers=rate.headers(),
                )
            response.headers.update(rate.headers())
        return principal

    return check


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TenantDep = Annotated[str, Depends(get_tenant)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]
EmbeddersDep = Annotated[Embedders, Depends(get_embedders)]
