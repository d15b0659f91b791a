"""Every answer the server refuses becomes one of these: a typed exception carrying the status, the reason, and
for a bad record its index and field.

The server answers every error as `{"detail": [{"type", "loc", "msg"}]}`; `loc` is where in the request the
problem is, e.g. `["body", "vectors", 3, "vector"]` for the vector of the fourth record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request."""

    type: str
    loc: tuple[str | int, ...]
    msg: str

    @property
    def index(self) -> int | None:
        """The index of the record (or query, or id) the problem is in, when it is in one."""
        return next((part for part in self.loc if isinstance(part, int)), None)

    @property
    def field(self) -> str | None:
        """The innermost named field of the problem's location, when it has one."""
        return next((part for part in reversed(self.loc) if isinstance(part, str) and part != "body"), None)


class TributaryError(Exception):
    """The server refused the request, or could not be reached."""

    status: int | None = None

    def __init__(self, reason: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = problems


class TransportError(TributaryError):
    """The server could not be reached, or the connection dropped before an answer (after the retries)."""


class RequestTimeout(TransportError):
    """No answer within the client's timeout (after the retries)."""


class ApiError(TributaryError):
    """An HTTP answer with an error status."""

    def __init__(
        self, status: int, reason: str, problems: tuple[Problem, ...] = (), retry_after: float | None = None
    ) -> None:
        super().__init__(reason, problems)
        self.status = status
        self.retry_after = retry_after

    @property
    def index(self) -> int | None:
        """For a bad record: its index in the request (of the first problem)."""
        return self.problems[0].index if self.problems else None

    @property
    def field(self) -> str | None:
        """For a bad record: the field at fault (of the first problem)."""
        return self.problems[0].field if self.problems else None

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401: no credential, or one the server does not accept."""


class Forbidden(ApiError):
    """403: the credential may not do this."""


class NotFound(ApiError):
    """404: no such dataset, vector, operation or key (or one of another tenant)."""


class Conflict(ApiError):
    """409."""


class PayloadTooLarge(ApiError):
    """413: split the request."""


class InvalidRequest(ApiError):
    """422: `problems` names each bad field; for a bad record, `index` and `field`."""


class RateLimited(ApiError):
    """429: `retry_after` says when to come back (after the client's own retries)."""


class Unavailable(ApiError):
    """503: a dependency of the server is down; retried by the client, raised once the retries are spent."""


class ReadTimedOut(ApiError):
    """504: the replica did not reach the read's consistency in time."""


class ServerError(ApiError):
    """Another 5xx."""


class BatchFailed(TributaryError):
    """A batch of `upsert_many` was refused; the batches before it were acknowledged, none after it was."""

    def __init__(self, first_record: int, error: ApiError) -> None:
        super().__init__(error.reason, error.problems)
        self.first_record, self.error, self.status = first_record, error, error.status

    @property
    def record(self) -> int | None:
        """The position in the stream of the record at fault, when the server named one."""
        return None if self.error.index is None else self.first_record + self.error.index


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
    504: ReadTimedOut,
}


def api_error(status: int, body: Any, retry_after: float | None) -> ApiError:
    """The exception for an error answer with this status and (decoded JSON) body."""
    detail = body.get("detail") if isinstance(body, dict) else None
    problems: tuple[Problem, ...] = ()
    if isinstance(detail, list):
        problems = tuple(
            Problem(str(p.get("type", "")), tuple(p.get("loc", ())), str(p.get("msg", "")))
            for p in detail
            if isinstance(p, dict)
        )
        reason = "; ".join(
            f"{'/'.join(str(part) for part in p.loc if part != 'body')}: {p.msg}" if p.loc else p.msg
            for p in problems
        )
    else:
        reason = str(detail) if detail is not None else f"HTTP {status}"
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(status, reason or f"HTTP {status}", problems, retry_after)
