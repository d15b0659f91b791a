"""Dependencies of the query API: a dataset's projection, once the replica reached the read's consistency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, status

from query_api.cache import SearchCache
from query_api.consistency import ConsistencyLevel, TokenBeyondLog
from query_api.registry import Served
from query_api.services import ReadServices
from tributary.bus import TOKEN_PATTERN, ConsistencyToken
from tributary.deps import ReadableDataset, ServicesDep, SettingsDep, TenantDep
from tributary.errors import invalid


@dataclass(frozen=True)
class ServedRead:
    served: Served
    consistency: ConsistencyLevel
    reflects: dict[str, int]


async def get_read_services(services: ServicesDep) -> ReadServices:
    if not isinstance(services, ReadServices):
        raise RuntimeError("this role serves no reads")
    return services


ReadServicesDep = Annotated[ReadServices, Depends(get_read_services)]


async def served_dataset(
    dataset: ReadableDataset,
    services: ReadServicesDep,
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
    barrier = services.barrier
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
    served = services.projections.get(tenant, dataset)
    if served is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return ServedRead(served, consistency, barrier.reflected())


ServedDep = Annotated[ServedRead, Depends(served_dataset)]


async def get_search_cache(services: ReadServicesDep) -> SearchCache:
    return services.search_cache


SearchCacheDep = Annotated[SearchCache, Depends(get_search_cache)]
