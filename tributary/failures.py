"""What the services refuse, whatever the transport asked. The services raise these; each entrypoint maps them to
its own answer: HTTP status codes and the one error shape in tributary/errors.py, gRPC status codes with details
in entrypoints/grpc_api/errors.py. A dependency that went away is `tributary.resilience.Unavailable`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Refused(Exception):
    """A request the service will not do, with a reason safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(Refused):
    """What the request names does not exist, or is another tenant's (which must look the same)."""


class Conflict(Refused):
    """The request contradicts the state: a dataset that exists, a retry racing its first attempt."""


class Unauthenticated(Refused):
    """No credential, or one that is not valid."""


class Forbidden(Refused):
    """A valid credential that may not do this."""


class TooManyRequests(Refused):
    """A rate limit: `headers` say when to retry (RateLimit-* and Retry-After)."""

    def __init__(self, reason: str, headers: Mapping[str, str], retry_after_s: float) -> None:
        super().__init__(reason)
        self.headers = dict(headers)
        self.retry_after_s = retry_after_s


class TimedOut(Refused):
    """The service could not answer in the time it allows itself (a read's consistency not reached)."""


class Invalid(Refused):
    """A request that breaks a rule, with each problem's location (`loc`, e.g. ["body", "vectors", 3, "vector"])
    and reason: the shape of FastAPI's request validation errors, so every 422 reads the same."""

    def __init__(self, problems: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("; ".join(str(p["msg"]) for p in problems))
        self.problems = [
            {"type": p.get("type", "value_error"), "loc": tuple(p.get("loc", ())), "msg": p["msg"]}
            for p in problems
        ]


def invalid(loc: Sequence[str | int], message: str) -> Invalid:
    """One problem, found against the dataset or the server's state, naming the field."""
    return Invalid([{"loc": tuple(loc), "msg": message}])
