"""FastAPI dependencies shared by the command and query APIs, as typed aliases. They find the process's typed
`Services` (tributary/services.py) on the app; nothing else reads `app.state` (tests/unit/test_import_graph.py).

They are `async def` even where they do not await: FastAPI runs a plain `def` dependency in its thread pool,
and the hops cost about 1 ms a request on this machine (measured on a cached search).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tributary.auth.authenticate import authenticate
from tributary.auth.gate import admit, check_dataset, check_tenant_wide, refuse_unauthenticated
from tributary.auth.key_cache import KeyCache
from tributary.auth.principal import Action, Principal
from tributary.embedding import Embedders
from tributary.failures import Unauthenticated
from tributary.health import Readiness
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
    except Unauthenticated as failure:
        client = request.client.host if request.client else "unknown"
        await refuse_unauthenticated(failure, services.rate_limiter, client)
        raise
    request.state.principal = principal  # for the audit record of this request
    return principal


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
        response.headers.update(await admit(principal, action, services.rate_limiter))
        return principal

    return check


# The dependencies by which a route declares the datasets it touches.
SCOPE_CHECKS: set[Callable[..., Awaitable[object]]] = set()


def scope_check(check: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Declares `check` a dependency that decides which datasets a route touches (`on_dataset` and
    `tenant_wide` are two; a route that finds its dataset elsewhere, e.g. in the row it reads, makes its own)."""
    SCOPE_CHECKS.add(check)
    return check


def on_dataset(action: Action) -> Callable[..., Awaitable[str]]:
    """A route that acts on the dataset of its `{dataset}` path parameter: the principal may do `action` on it
    (a credential limited to some datasets). Gives the dataset's name."""

    @scope_check
    async def check(dataset: Annotated[str, Path()], principal: CurrentPrincipal) -> str:
        check_dataset(principal, action, dataset)
        return dataset

    return check


def tenant_wide(action: Action) -> Callable[..., Awaitable[Principal]]:
    """A route that acts on the tenant as a whole (creating a dataset, listing them): a credential limited to
    some datasets may read (and sees only its datasets) but not write."""

    @scope_check
    async def check(principal: CurrentPrincipal) -> Principal:
        check_tenant_wide(principal, action)
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
