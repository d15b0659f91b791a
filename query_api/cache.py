"""The search cache: a small in-process LRU in front of Redis, shared by the replicas.

Keys carry the tenant, the dataset, DeepLake's id of it, its version and how many events of that version this
replica has applied, so a new version (or a further event of the same commit) never reads an older answer, nor
a dataset created again under its name (whose version ids start again from the same numbers) its predecessor's. Redis is optional: when
it fails the cache counts the error (tributary/metrics.py) and the search is answered uncached.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tributary.metrics import SEARCH_CACHE_ERRORS, SEARCH_CACHE_HITS, SEARCH_CACHE_MISSES
from tributary.resilience import CircuitBreaker, Unavailable

log = logging.getLogger(__name__)

LOCAL_ENTRIES = 2048
TTL_S = 300
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
LOCAL_HITS, REDIS_HITS = SEARCH_CACHE_HITS.labels("local"), SEARCH_CACHE_HITS.labels("redis")


def canonical(request: BaseModel) -> bytes:
    """The validated request as JSON that two different requests never share: its fields in their fixed order,
    floats in their shortest round-trip form. A float that is not finite is refused by validation; were one ever
    built around it, the model writes it as the constant NaN or Infinity (`ser_json_inf_nan="constants"`), never
    as `null`, the form of "not given". (The Rust serializer: a JSON dump with sorted keys cost five times as
    much, 0.7 ms a search.)"""
    return request.model_dump_json().encode()


class SearchCache:
    def __init__(self, redis: Redis | None, breaker: CircuitBreaker | None = None) -> None:
        self._redis = redis
        # While open (Redis failed in a row), searches skip Redis instead of each waiting out the timeout.
        self._breaker = breaker or CircuitBreaker("Redis")
        self._local: OrderedDict[str, bytes] = OrderedDict()

    @staticmethod
    def key(
        tenant: str, dataset: str, dataset_id: str, version: str, applied: int, ef: str, request: BaseModel
    ) -> str:
        """`dataset_id`: DeepLake's id of this creation of the dataset, as its version ids repeat in a dataset
        created again under its name (and in another deployment's of the same name, on a shared Redis). `ef`: the
        dataset's tuned search breadths (DatasetProjection.tuning_key), so that a tuning is not hidden by answers
        found before it (a request's own `ef` and `exact` are in its JSON)."""
        digest = hashlib.sha256(canonical(request)).hexdigest()
        return f"tributary:search:{tenant}:{dataset}:{dataset_id}:{version}:{applied}:{ef}:{digest}"

    async def get(self, key: str) -> bytes | None:
        found = self._local.get(key)
        if found is not None:
            self._local.move_to_end(key)
            LOCAL_HITS.inc()
            return found
        if self._redis is not None:
            try:
                with self._breaker.guard(*REDIS_ERRORS):
                    cached = await self._redis.get(key)
                found = cached.encode() if isinstance(cached, str) else cached
            except (*REDIS_ERRORS, Unavailable) as exc:
                SEARCH_CACHE_ERRORS.inc()
                log.debug("cache read failed: %s", exc)
            if found is not None:
                REDIS_HITS.inc()
                self._remember(key, found)
                return found
        SEARCH_CACHE_MISSES.inc()
        return None

    async def put(self, key: str, value: bytes) -> None:
        self._remember(key, value)
        if self._redis is not None:
            try:
                with self._breaker.guard(*REDIS_ERRORS):
                    await self._redis.set(key, value, ex=TTL_S)
            except (*REDIS_ERRORS, Unavailable) as exc:
                SEARCH_CACHE_ERRORS.inc()
                log.debug("cache write failed: %s", exc)

    def _remember(self, key: str, value: bytes) -> None:
        self._local[key] = value
        self._local.move_to_end(key)
        while len(self._local) > LOCAL_ENTRIES:
            self._local.popitem(last=False)
