"""FastAPI dependencies shared by the command and query APIs, as typed aliases.

They are `async def` even where they do not await: FastAPI runs a plain `def` dependency in its thread pool,
and the hops cost about 1 ms a request on this machine (measured on a cached search).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Path, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from tributary.auth.authenticate import authenticate
from tributary.auth.key_cache import KeyCache
from tributary.auth.principal import Action, Decision, Principal, authorize, authorize_role
from tributary.auth.rate_limit import RateLimiter
from tributary.embedding import Embedders
from tributary.resilience import Unavailable
from tributary.settings import Settings

T = TypeVar("T")


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
    try:
        principal = await authenticate(request)
    except HTTPException:
        await _limit_unauthenticated(request)
        raise
    request.state.principal = principal  # for the audit record of this request
    return principal


async def _limit_unauthenticated(request: Request) -> None:
    """A request that failed authentication counts against its client address: past the limit, a 429."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is None:
        return
    rate = await limiter.hit_unauthenticated(request.client.host if request.client else "unknown")
    # Unchecked (Redis away), the request still gets its 401: neither a 429 nor a 503 would be truer.
    if rate.checked and not rate.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests without a valid credential; retry later",
            headers=rate.headers(),
        )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> str:
    # Every name a request uses is resolved within its credential's tenant: another tenant's dataset is not found.
    return principal.tenant


def allowed(action: Action) -> Callable[..., Awaitable[Principal]]:
    """A router dependency: the request's principal may do `action` in its tenant, and its rate limit lets it.
    Which datasets it may touch is each route's own declaration (`on_dataset`, `tenant_wide`, `scope_check`):
    tests/test_dataset_scope.py checks that every route declares one."""

    async def check(
        request: Request, response: Response, principal: Annotated[Principal, Depends(get_principal)]
    ) -> Principal:
        decision = authorize_role(principal, action, principal.tenant)
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


# The dependencies by which a route declares the datasets it touches.
SCOPE_CHECKS: set[Callable[..., Awaitable[object]]] = set()


def scope_check(check: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Declares `check` a dependency that decides which datasets a route touches (`on_dataset` and
    `tenant_wide` are two; a route that finds its dataset elsewhere, e.g. in the row it reads, makes its own)."""
    SCOPE_CHECKS.add(check)
    return check


def _forbid_unless(decision: Decision) -> None:
    if not decision:
        raise HTTPException(status.HTTP_403_FORBIDDEN, decision.reason)


def on_dataset(action: Action) -> Callable[..., Awaitable[str]]:
    """A route that acts on the dataset of its `{dataset}` path parameter: the principal may do `action` on it
    (a credential limited to some datasets). Gives the dataset's name."""

    @scope_check
    async def check(dataset: Annotated[str, Path()], principal: CurrentPrincipal) -> str:
        _forbid_unless(authorize(principal, action, principal.tenant, dataset))
        return dataset

    return check


def tenant_wide(action: Action) -> Callable[..., Awaitable[Principal]]:
    """A route that acts on the tenant as a whole (creating a dataset, listing them): a credential limited to
    some datasets may read (and sees only its datasets) but not write."""

    @scope_check
    async def check(principal: CurrentPrincipal) -> Principal:
        _forbid_unless(authorize(principal, action, principal.tenant))
        return principal

    return check


SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadableDataset = Annotated[str, Depends(on_dataset("read"))]
WritableDataset = Annotated[str, Depends(on_dataset("write"))]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TenantDep = Annotated[str, Depends(get_tenant)]
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]
EmbeddersDep = Annotated[Embedders, Depends(get_embedders)]
