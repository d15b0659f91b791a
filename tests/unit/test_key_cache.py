from __future__ import annotations

from tests.clock import FakeClock
from tributary.auth.key_cache import KeyCache
from tributary.auth.principal import Principal


def principal(subject: str) -> Principal:
    return Principal(subject=subject, tenant="t", roles=frozenset({"reader"}), via="key")


def test_a_key_is_trusted_for_its_ttl_and_then_looked_up_again() -> None:
    clock = FakeClock()
    cache = KeyCache(ttl_s=30, clock=clock)
    cache.put("h1", principal("k1"), cache.generation)
    clock.advance(29.999)
    assert cache.get("h1") == principal("k1")
    clock.advance(0.001)
    assert cache.get("h1") is None


def test_a_revoked_key_is_forgotten_and_others_kept() -> None:
    cache = KeyCache(ttl_s=60)
    cache.put("h1", principal("k1"), cache.generation)
    cache.put("h2", principal("k2"), cache.generation)
    cache.forget("k1")
    assert cache.get("h1") is None and cache.get("h2") == principal("k2")


def test_a_zero_ttl_keeps_nothing() -> None:
    cache = KeyCache(ttl_s=0)
    cache.put("h1", principal("k1"), cache.generation)
    assert cache.get("h1") is None


def test_a_lookup_that_began_before_a_revocation_is_not_kept() -> None:
    cache = KeyCache(ttl_s=60)
    began = cache.generation
    cache.forget("k1")  # revoked while the lookup read the row
    cache.put("h1", principal("k1"), began)
    assert cache.get("h1") is None


def test_a_key_verified_within_the_grace_is_trusted_only_as_stale() -> None:
    clock = FakeClock()
    cache = KeyCache(ttl_s=30, grace_s=60, clock=clock)
    cache.put("h1", principal("k1"), cache.generation)
    clock.advance(31)
    # Past the ttl it is looked up again as usual; only an outage falls back on it.
    assert cache.get("h1") is None
    assert cache.stale("h1") == principal("k1")
    cache.forget("k1")
    assert cache.stale("h1") is None


def test_the_grace_ends() -> None:
    clock = FakeClock()
    cache = KeyCache(ttl_s=30, grace_s=60, clock=clock)
    cache.put("h1", principal("k1"), cache.generation)
    clock.advance(89.999)
    assert cache.stale("h1") == principal("k1")
    clock.advance(0.001)
    assert cache.stale("h1") is None
