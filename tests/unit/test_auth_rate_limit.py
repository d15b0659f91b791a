"""The pure parts of rate limiting: limits from settings and the headers of a decision."""

from __future__ import annotations

from tributary.auth.rate_limit import Bucket, RateDecision, RateLimits
from tributary.settings import Settings


def test_limits_come_from_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        rate_limit_key_reads_per_s=1,
        rate_limit_key_reads_burst=2,
        rate_limit_key_writes_per_s=3,
        rate_limit_key_writes_burst=4,
        rate_limit_tenant_reads_per_s=5,
        rate_limit_tenant_reads_burst=6,
        rate_limit_tenant_writes_per_s=7,
        rate_limit_tenant_writes_burst=8,
    )
    limits = RateLimits.from_settings(settings)
    assert limits.buckets("read") == (Bucket(rate_per_s=1, burst=2), Bucket(rate_per_s=5, burst=6))
    assert limits.buckets("write") == (Bucket(rate_per_s=3, burst=4), Bucket(rate_per_s=7, burst=8))


def decision(**values: object) -> RateDecision:
    base: dict[str, object] = {
        "allowed": False,
        "checked": True,
        "limit": 10,
        "remaining": 0,
        "retry_after_s": 0.01,
        "reset_after_s": 4.2,
    }
    return RateDecision.model_validate(base | values)


def test_headers() -> None:
    # Retry-After is whole seconds, rounded up, and never 0 on a refusal.
    assert decision().headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "5",
        "Retry-After": "1",
    }
    assert decision(retry_after_s=2.3).headers()["Retry-After"] == "3"
    assert "Retry-After" not in decision(allowed=True, remaining=3, retry_after_s=0).headers()
    # Unchecked (Redis down): no limits to report.
    assert decision(allowed=True, checked=False).headers() == {}
    assert decision(checked=False, retry_after_s=1).headers() == {"Retry-After": "1"}
