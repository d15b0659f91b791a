"""The door every request goes through, whatever its transport: who it is (`authenticate`), what it may do in its
tenant and whether its rate limit lets it (`admit`), and which datasets it may touch (`check_dataset`,
`check_tenant_wide`). The HTTP dependencies (tributary/deps.py) and the gRPC servicers call these, so an
authorization decision is made in one place (`tributary.auth.principal.authorize`) and refused the same way."""

from __future__ import annotations

from tributary.auth.principal import Action, Decision, Principal, authorize, authorize_role
from tributary.auth.rate_limit import RateLimiter
from tributary.failures import Forbidden, TooManyRequests, Unauthenticated
from tributary.resilience import Unavailable


async def admit(principal: Principal, action: Action, limiter: RateLimiter | None) -> dict[str, str]:
    """`principal` may do `action` in its tenant at all, and its rate limit lets it: the rate-limit headers."""
    _forbid_unless(authorize_role(principal, action, principal.tenant))
    if limiter is None:
        return {}
    rate = await limiter.hit(principal, "read" if action == "read" else "write")
    if not rate.checked and not rate.allowed:
        # Failing closed is not the client's fault: not a 429 that says it went too fast.
        raise Unavailable("Redis", "rate limits cannot be checked", rate.retry_after_s)
    if not rate.allowed:
        raise TooManyRequests("rate limit exceeded; retry later", rate.headers(), rate.retry_after_s)
    return rate.headers()


async def refuse_unauthenticated(failure: Unauthenticated, limiter: RateLimiter | None, client: str) -> None:
    """A request that failed authentication counts against its client address: past the limit it is told to
    slow down (429) rather than told again that its credential is wrong. Raises either way."""
    if limiter is not None:
        rate = await limiter.hit_unauthenticated(client)
        # Unchecked (Redis away), the request still gets its 401: neither a 429 nor a 503 would be truer.
        if rate.checked and not rate.allowed:
            raise TooManyRequests(
                "too many requests without a valid credential; retry later",
                rate.headers(),
                rate.retry_after_s,
            ) from failure
    raise failure


def check_dataset(principal: Principal, action: Action, dataset: str) -> None:
    """The principal may do `action` on this dataset of its tenant (a credential limited to some datasets)."""
    _forbid_unless(authorize(principal, action, principal.tenant, dataset))


def check_tenant_wide(principal: Principal, action: Action) -> None:
    """The principal may act on its tenant as a whole (creating a dataset, listing them): a credential limited
    to some datasets may read (and sees only its datasets) but not write."""
    _forbid_unless(authorize(principal, action, principal.tenant))


def _forbid_unless(decision: Decision) -> None:
    if not decision:
        raise Forbidden(decision.reason)
