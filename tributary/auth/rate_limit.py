"""Rate limits: token buckets in Redis, per credential and per tenant, separately for reads and writes.

One Lua script refills and takes from both buckets of a request atomically, so replicas sharing a Redis count
together exactly; it reads the clock with Redis TIME, so replicas' clocks do not matter (a test may pass a
clock instead). A request takes
tokens only when both buckets have them: a refusal costs nothing. When Redis does not answer, the limiter lets
requests through or refuses them as configured, and logs the change of state (not every request).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from tributary.auth.principal import Principal
from tributary.metrics import RATE_LIMITED
from tributary.resilience import CircuitBreaker, Unavailable
from tributary.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["read", "write"]
# Retry-After when Redis is down and the limiter fails closed: there is no bucket to compute one from.
UNAVAILABLE_RETRY_S = 1.0

# KEYS: the buckets. ARGV: the cost, the time in seconds ('' for Redis TIME), then the rate (tokens/s) and burst
# of each bucket.
# Answers {1 if allowed else 0, tokens left in each bucket...}; floats travel as strings, since Redis would
# truncate a Lua number in the reply to an integer.
TOKEN_BUCKET = """
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if not now then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end
local levels = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local level = burst
  if state[1] then
    level = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
  end
  levels[i] = level
  if level < cost then allowed = 0 end
end
local answer = {allowed}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  if allowed == 1 then levels[i] = levels[i] - cost end
  redis.call('HSET', key, 'tokens', string.format('%.6f', levels[i]), 'at', string.format('%.6f', now))
  -- A bucket left alone refills completely: past that it equals no bucket, so let it go.
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  answer[i + 1] = string.format('%.6f', levels[i])
end
return answer
"""
TOKEN_BUCKET_SHA = hashlib.sha1(TOKEN_BUCKET.encode()).hexdigest()


class Bucket(BaseModel):
    model_config = ConfigDict(frozen=True)

    rate_per_s: float = Field(gt=0)
    burst: int = Field(ge=1)


class RateLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_reads: Bucket
    key_writes: Bucket
    tenant_reads: Bucket
    tenant_writes: Bucket
    unauthenticated: Bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            key_reads=Bucket(
                rate_per_s=settings.rate_limit_key_reads_per_s, burst=settings.rate_limit_key_reads_burst
            ),
            key_writes=Bucket(
                rate_per_s=settings.rate_limit_key_writes_per_s, burst=settings.rate_limit_key_writes_burst
            ),
            tenant_reads=Bucket(
                rate_per_s=settings.rate_limit_tenant_reads_per_s,
                burst=settings.rate_limit_tenant_reads_burst,
            ),
            tenant_writes=Bucket(
                rate_per_s=settings.rate_limit_tenant_writes_per_s,
                burst=settings.rate_limit_tenant_writes_burst,
            ),
            unauthenticated=Bucket(
                rate_per_s=settings.rate_limit_unauthenticated_per_s,
                burst=settings.rate_limit_unauthenticated_burst,
            ),
        )

    def buckets(self, kind: Kind) -> tuple[Bucket, Bucket]:
        """The credential's bucket and the tenant's."""
        if kind == "read":
            return self.key_reads, self.tenant_reads
        return self.key_writes, self.tenant_writes


class RateDecision(BaseModel):
    """The answer for one request, described by the bucket that binds it (the emptier one)."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    # False when Redis did not answer: `allowed` is then the configured fail-open/closed answer.
    checked: bool
    limit: int
    remaining: int
    retry_after_s: float
    # Until the binding bucket is full again.
    reset_after_s: float

    def headers(self) -> dict[str, str]:
        """Retry-After on a refusal; X-RateLimit-Limit (the burst), -Remaining and -Reset (seconds until the
        bucket is full) when the limit was checked."""
        headers: dict[str, str] = {}
        if self.checked:
            headers["X-RateLimit-Limit"] = str(self.limit)
            headers["X-RateLimit-Remaining"] = str(self.remaining)
            headers["X-RateLimit-Reset"] = str(math.ceil(self.reset_after_s))
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        limits: RateLimits,
        *,
        fail_open: bool,
        namespace: str = "tributary",
        clock: Callable[[], float] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """`redis` should have short socket timeouts: a slow limiter slows every request; while `breaker` (shared
        with the search cache) is open, Redis is not asked at all. `namespace` keeps deployments that share a
        Redis apart (the topic prefix). Without a `clock`, Redis's is used."""
        self._breaker = breaker or CircuitBreaker("Redis")
        self._redis = redis
        self._clock = clock
        self._namespace = namespace
        self._limits = limits
        self._fail_open = fail_open
        self._redis_down = False
        self.errors = 0

    def keys(self, principal: Principal, kind: Kind) -> tuple[str, str]:
        # The tenant is the hash tag, so both buckets of a request sit in one Redis Cluster slot.
        base = f"{self._namespace}:ratelimit:{{{principal.tenant}}}:{kind}"
        return f"{base}:{principal.via}:{principal.subject}", f"{base}:tenant"

    async def hit(self, principal: Principal, kind: Kind, cost: int = 1) -> RateDecision:
        """Takes `cost` tokens from the principal's bucket and its tenant's for `kind`, if both have them."""
        return _counted(kind, await self._take(self.keys(principal, kind), self._limits.buckets(kind), cost))

    async def hit_unauthenticated(self, address: str) -> RateDecision:
        """Takes a token from the bucket of a client address whose request failed authentication."""
        key = f"{self._namespace}:ratelimit:unauthenticated:{address}"
        return _counted("unauthenticated", await self._take((key,), (self._limits.unauthenticated,), 1))

    async def _take(self, keys: tuple[str, ...], buckets: tuple[Bucket, ...], cost: int) -> RateDecision:
        if not 1 <= cost <= min(bucket.burst for bucket in buckets):
            raise ValueError(f"cost {cost} is outside 1..burst: it could never be allowed")
        now = "" if self._clock is None else repr(self._clock())
        args = [cost, now, *(value for bucket in buckets for value in (bucket.rate_per_s, bucket.burst))]
        try:
            with self._breaker.guard(RedisError, OSError, TimeoutError):
                answer = await self._run(keys, args)
        except (RedisError, OSError, TimeoutError, Unavailable) as exc:
            return self._unavailable(exc)
        if self._redis_down:
            self._redis_down = False
            log.info("rate limiting: Redis answers again")
        allowed = bool(int(answer[0]))
        return _decision(allowed, buckets, [float(level) for level in answer[1:]], cost)

    async def _run(self, keys: tuple[str, ...], args: list[float | int | str]) -> list[bytes | str | int]:
        try:
            answer = await self._redis.evalsha(TOKEN_BUCKET_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # First use on this Redis (or after a restart or SCRIPT FLUSH): EVAL also caches the script.
            answer = await self._redis.eval(TOKEN_BUCKET, len(keys), *keys, *args)
        return list(answer)

    def _unavailable(self, exc: Exception) -> RateDecision:
        self.errors += 1
        if not self._redis_down:
            self._redis_down = True
            outcome = "letting requests through" if self._fail_open else "refusing requests"
            log.warning("rate limiting: Redis does not answer (%s); %s until it does", exc, outcome)
        return RateDecision(
            allowed=self._fail_open,
            checked=False,
            limit=0,
            remaining=0,
            retry_after_s=0.0 if self._fail_open else UNAVAILABLE_RETRY_S,
            reset_after_s=0.0,
        )


def _counted(kind: str, decision: RateDecision) -> RateDecision:
    if not decision.allowed:
        RATE_LIMITED.labels(kind).inc()
    return decision


def _decision(allowed: bool, buckets: tuple[Bucket, ...], levels: list[float], cost: int) -> RateDecision:
    def retry_after(i: int) -> float:
        return max(0.0, cost - levels[i]) / buckets[i].rate_per_s

    if allowed:
        binding = min(range(len(buckets)), key=lambda i: levels[i])
    else:
        binding = max(range(len(buckets)), key=retry_after)
    bucket, level = buckets[binding], levels[binding]
    return RateDecision(
        allowed=allowed,
        checked=True,
        limit=bucket.burst,
        remaining=max(0, math.floor(level)),
        retry_after_s=0.0 if allowed else retry_after(binding),
        reset_after_s=(bucket.burst - level) / bucket.rate_per_s,
    )
