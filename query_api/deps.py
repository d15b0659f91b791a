"""Dependencies of the query API: the read service, and a dataset's projection once the replica reached the
read's consistency (query_api/reading.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from query_api.consistency import ConsistencyLevel
from query_api.reading import Reader, ServedRead
from query_api.services import ReadServices
from tributary.bus import TOKEN_PATTERN
from tributary.deps import ReadableDataset, ServicesDep, TenantDep


async def get_read_services(services: ServicesDep) -> ReadServices:
    if not isinstance(services, ReadServices):
        raise RuntimeError("this role serves no reads")
    return services


ReadServicesDep = Annotated[ReadServices, Depends(get_read_services)]


async def get_reader(services: ReadServicesDep, tenant: TenantDep) -> Reader:
    return Reader(services, tenant)


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def served_dataset(
    dataset: ReadableDataset,
    reader: ReaderDep,
    consistency: Annotated[
        ConsistencyLevel | None,
        Query(description="eventual, bounded (default), session (needs `token`) or strong"),
    ] = None,
    token: Annotated[
        str | None,
        Query(description="For `session`: the consistency_token a write answered", pattern=TOKEN_PATTERN),
    ] = None,
    version: Annotated[
        str | None,
        Query(
            description="Answer from this past version, read-only: a DeepLake version id, a tag or a snapshot "
            "id (GET .../versions lists them); not with `consistency` or `token`",
            min_length=1,
            max_length=200,
        ),
    ] = None,
) -> ServedRead:
    return await reader.served(dataset, consistency, token, version)


ServedDep = Annotated[ServedRead, Depends(served_dataset)]
