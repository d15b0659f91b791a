"""Dependencies of the query API: a dataset's projection, once the replica reached the read's consistency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status

from query_api.cache import SearchCache
from query_api.consistency import ConsistencyLevel, ReadBarrier, TokenBeyondLog
from query_api.registry import Projections, Served
from tributary.bus import TOKEN_PATTERN, ConsistencyToken
from tributary.deps import ReadableDataset, SettingsDep, TenantDep
from tributary.errors import invalid


@dataclass(frozen=True)
class ServedRead:
    served: Served
    consistency: ConsistencyLevel
    reflects: dict[str, int]


async def served_dataset(
    dataset: ReadableDataset,
    request: Request,
    tenant: TenantDep,
    settings: SettingsDep,
    consistency: Annotated[
        ConsistencyLevel, Query(description="eventual, bounded (default), session (needs `token`) or strong")
    ] = "bounded",
    token: Annotated[
        str | None,
        Query(description="For `session`: the consistency_token a write answered", pattern=TOKEN_PATTERN),
    ] = None,
) -> ServedRead:
    parsed = None
    if consistency == "session":
        if token is None:
            raise invalid(("query", "token"), "session consistency needs a `token`")
        try:
            parsed = ConsistencyToken.parse(token)
        except ValueError as exc:
            raise invalid(("query", "token"), str(exc)) from None
    barrier: ReadBarrier = request.app.state.barrier
    try:
        reached = await barrier.reach(consistency, tenant, dataset, parsed, settings.read_timeout_s)
    except TokenBeyondLog as exc:
        raise invalid(("query", "token"), str(exc)) from None
    if not reached:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"this replica did not reach {consistency} consistency within {settings.read_timeout_s} s; retry, "
            "or read with a weaker level",
        )
    projections: Projections = request.app.state.projections
    served = projections.get(tenant, dataset)
    if served is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return ServedRead(served, consistency, barrier.reflected())


ServedDep = Annotated[ServedRead, Depends(served_dataset)]


async def get_search_cache(request: Request) -> SearchCache:
    cache: SearchCache = request.app.state.search_cache
    return cache


SearchCacheDep = Annotated[SearchCache, Depends(get_search_cache)]
