"""FastAPI dependencies shared by the command and query APIs, as typed aliases. They find the process's typed
`Services` (tributary/services.py) on the app; nothing else reads `app.state` (tests/unit/test_import_graph.py).

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
from tributary.health import Readiness
from tributary.resilience import Unavailable
from tributary.services import Services, services_of
from tributary.settings import Settings

T = TypeVar("T")


async def get_services(request: Request) -> Services:
    services = services_of(request.app)
    if services is None:
        raise RuntimeError("the app's services are not started (its lifespan has not run)")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


async def get_embedders(services: ServicesDep) -> Embedders:
    return services.embedders


async def get_key_cache(services: ServicesDep) -> KeyCache:
    return services.key_cache


async def get_readiness(services: ServicesDep) -> Readiness:
    """A worker's health app, which has no `Services`, overrides this with its own checks."""
    return services.readiness


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    try:
        principal = await authenticate(request.headers.get("authorization", ""), services)
    except HTTPException:
        await _limit_unauthenticated(request, services.rate_limiter)
        raise
    request.state.principal = principal  # for the audit record of this request
    return principal


async def _limit_unauthenticated(request: Request, limiter: RateLimiter | None) -> None:
    """A request that failed authentication counts against its client address: past the limit, a 429."""
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
        response: Response, services: ServicesDep, principal: Annotated[Principal, Depends(get_principal)]
    ) -> Principal:
        decision = authorize_role(principal, action, principal.tenant)
        if not decision:
            raise HTTPException(status.HTTP_403_FORBIDDEN, decision.reason)
        limiter = services.rate_limiter
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
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
