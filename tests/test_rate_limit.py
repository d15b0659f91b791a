"""Rate limits against a real Redis: bursts, refill, buckets shared exactly between clients, fail open/closed.
The limiters read a FakeClock, so time passes only where a test says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from tests.clock import FakeClock
from tributary.auth.principal import Principal
from tributary.auth.rate_limit import TOKEN_BUCKET_SHA, Bucket, RateDecision, RateLimiter, RateLimits

# Slow enough that nothing refills even when a test moves its clock.
FROZEN = 0.001


def limits(key: Bucket, tenant: Bucket | None = None) -> RateLimits:
    tenant = tenant or Bucket(rate_per_s=FROZEN, burst=1000)
    return RateLimits(
        key_reads=key, key_writes=key, tenant_reads=tenant, tenant_writes=tenant, unauthenticated=key
    )


def who(tenant: str, subject: str = "key-1") -> Principal:
    return Principal(subject=subject, tenant=tenant, roles=frozenset({"writer"}), via="key")


@pytest.fixture
async def clients(redis_url: str, run_id: str) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients with their own connections, as two replicas would have; run_id is the tests' tenant."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yield first, second
    # Only this test's buckets: the Redis may be shared.
    async for key in first.scan_iter(match=f"tributary:ratelimit:{{{run_id}*"):
        await first.delete(key)
    await first.aclose()
    await second.aclose()


async def test_a_burst_is_allowed_then_limited(clients: tuple[Redis, Redis], run_id: str) -> None:
    limiter = RateLimiter(
        clients[0], limits(Bucket(rate_per_s=0.5, burst=5)), fail_open=False, clock=FakeClock()
    )
    rejected_before = (
        REGISTRY.get_sample_value("tributary_rate_limit_rejections_total", {"kind": "write"}) or 0
    )
    answers = [await limiter.hit(who(run_id), "write") for _ in range(6)]
    assert [a.allowed for a in answers] == [True] * 5 + [False]
    rejected = REGISTRY.get_sample_value("tributary_rate_limit_rejections_total", {"kind": "write"})
    assert rejected == rejected_before + 1
    assert [a.remaining for a in answers] == [4, 3, 2, 1, 0, 0]
    assert all(a.checked and a.limit == 5 for a in answers)
    refused = answers[-1]
    assert refused.retry_after_s == 2.0  # one token at 0.5 tokens/s
    assert refused.reset_after_s == 10.0
    assert refused.headers() == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "10",
        "Retry-After": "2",
    }
    assert answers[0].headers() == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "2",
    }


async def test_the_bucket_refills_over_time(clients: tuple[Redis, Redis], run_id: str) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clients[0], limits(Bucket(rate_per_s=10, burst=2)), fail_open=False, clock=clock)
    assert [(await limiter.hit(who(run_id), "read")).allowed for _ in range(3)] == [True, True, False]
    clock.advance(0.15)  # 1.5 tokens
    assert [(await limiter.hit(who(run_id), "read")).allowed for _ in range(2)] == [True, False]
    clock.advance(0.5)  # would be 5 tokens, but a bucket holds its burst
    assert [(await limiter.hit(who(run_id), "read")).allowed for _ in range(3)] == [True, True, False]


async def test_two_clients_share_one_bucket_exactly(clients: tuple[Redis, Redis], run_id: str) -> None:
    bucket, clock = Bucket(rate_per_s=FROZEN, burst=20), FakeClock()
    replicas = [RateLimiter(client, limits(bucket), fail_open=False, clock=clock) for client in clients]

    answers: list[RateDecision] = await asyncio.gather(
        *(replicas[i % 2].hit(who(run_id), "write") for i in range(50))
    )
    allowed = [a for a in answers if a.allowed]
    assert len(allowed) == 20
    assert sorted(a.remaining for a in allowed) == list(range(20))  # each token taken once
    tokens = await clients[0].hget(replicas[0].keys(who(run_id), "write")[0], "tokens")
    assert tokens is not None and float(tokens) < 0.01


async def test_reads_and_writes_have_separate_buckets(clients: tuple[Redis, Redis], run_id: str) -> None:
    limiter = RateLimiter(
        clients[0], limits(Bucket(rate_per_s=FROZEN, burst=1)), fail_open=False, clock=FakeClock()
    )
    assert (await limiter.hit(who(run_id), "write")).allowed
    assert not (await limiter.hit(who(run_id), "write")).allowed
    assert (await limiter.hit(who(run_id), "read")).allowed


async def test_credentials_have_their_own_buckets_within_the_tenants(
    clients: tuple[Redis, Redis], run_id: str
) -> None:
    per_key, per_tenant = Bucket(rate_per_s=FROZEN, burst=2), Bucket(rate_per_s=FROZEN, burst=3)
    limiter = RateLimiter(clients[0], limits(per_key, per_tenant), fail_open=False, clock=FakeClock())
    alice, bob = who(run_id, "alice"), who(run_id, "bob")
    assert [(await limiter.hit(alice, "read")).allowed for _ in range(3)] == [True, True, False]
    # Bob has his own key bucket, but the tenant's has one token left.
    first = await limiter.hit(bob, "read")
    assert first.allowed and (first.limit, first.remaining) == (3, 0)
    refused = await limiter.hit(bob, "read")
    assert not refused.allowed and refused.limit == 3  # the tenant's bucket is the one that binds
    # A refusal takes nothing: Bob's own bucket still has its second token once the tenant refills.
    assert (await clients[0].hget(limiter.keys(bob, "read")[0], "tokens")) is not None
    # Another tenant is untouched, and so is a JWT subject named like the key.
    assert (await limiter.hit(who(f"{run_id}-other", "alice"), "read")).allowed
    jwt_alice = Principal(subject="alice", tenant=f"{run_id}-jwt", roles=frozenset({"reader"}), via="jwt")
    assert limiter.keys(jwt_alice, "read")[0] != limiter.keys(who(f"{run_id}-jwt", "alice"), "read")[0]


async def test_a_refusal_takes_no_token(clients: tuple[Redis, Redis], run_id: str) -> None:
    per_key, per_tenant = Bucket(rate_per_s=FROZEN, burst=5), Bucket(rate_per_s=FROZEN, burst=1)
    limiter = RateLimiter(clients[0], limits(per_key, per_tenant), fail_open=False, clock=FakeClock())
    assert (await limiter.hit(who(run_id), "write")).allowed
    for _ in range(3):
        assert not (await limiter.hit(who(run_id), "write")).allowed
    tokens = await clients[0].hget(limiter.keys(who(run_id), "write")[0], "tokens")
    assert tokens is not None and float(tokens) == pytest.approx(4, abs=0.01)


async def test_costs(clients: tuple[Redis, Redis], run_id: str) -> None:
    limiter = RateLimiter(
        clients[0], limits(Bucket(rate_per_s=FROZEN, burst=10)), fail_open=False, clock=FakeClock()
    )
    assert (await limiter.hit(who(run_id), "read", cost=7)).remaining == 3
    assert not (await limiter.hit(who(run_id), "read", cost=4)).allowed
    assert (await limiter.hit(who(run_id), "read", cost=3)).allowed
    with pytest.raises(ValueError, match="could never be allowed"):
        await limiter.hit(who(run_id), "read", cost=11)


async def test_buckets_expire_once_full_again(clients: tuple[Redis, Redis], run_id: str) -> None:
    limiter = RateLimiter(
        clients[0], limits(Bucket(rate_per_s=1, burst=10)), fail_open=False, clock=FakeClock()
    )
    await limiter.hit(who(run_id), "read")
    key_bucket, tenant_bucket = limiter.keys(who(run_id), "read")
    # Redis counts the expiry down on its own clock.
    assert 0 < await clients[0].pttl(key_bucket) <= 10_000 + 1000  # 10 tokens at 1/s, and a second
    assert 0 < await clients[0].pttl(tenant_bucket) <= 1000 / FROZEN * 1000 + 1000


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_down(fail_open: bool, caplog: pytest.LogCaptureFixture) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/7", socket_connect_timeout=0.5)
    limiter = RateLimiter(unreachable, limits(Bucket(rate_per_s=1, burst=1)), fail_open=fail_open)
    with caplog.at_level(logging.WARNING, logger="tributary.auth.rate_limit"):
        answers = [await limiter.hit(who("acme"), "write") for _ in range(3)]
    await unreachable.aclose()
    assert all(a.allowed is fail_open and not a.checked for a in answers)
    expected = {} if fail_open else {"Retry-After": "1"}
    assert answers[0].headers() == expected
    assert limiter.errors == 3
    # Logged once when Redis went away, not once per request.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert ("letting requests through" if fail_open else "refusing requests") in warnings[0]


async def test_the_script_is_cached_by_redis(clients: tuple[Redis, Redis], run_id: str) -> None:
    # SCRIPT FLUSH would reach every user of a shared Redis, so the fallback is checked by its parts: an
    # unknown SHA raises NoScriptError (what the limiter catches), and after a hit Redis holds the script.
    with pytest.raises(NoScriptError):
        await clients[0].evalsha("0" * 40, 0)
    limiter = RateLimiter(
        clients[0], limits(Bucket(rate_per_s=1, burst=1)), fail_open=False, clock=FakeClock()
    )
    assert (await limiter.hit(who(run_id), "read")).allowed
    assert await clients[0].script_exists(TOKEN_BUCKET_SHA) == [True]
