"""How a refusal of the services (tributary/failures.py), a dependency away and a request that does not validate
reach a gRPC client: a status code, a reason, and the standard google.rpc details (BadRequest naming each field,
RetryInfo saying when to retry), as the HTTP API answers a code and the one error shape."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from command_api.operations import NotPublished
from tributary.deeplake_lib import STORAGE_OUTAGES, storage_unavailable
from tributary.failures import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Refused,
    TimedOut,
    TooManyRequests,
    Unauthenticated,
)
from tributary.resilience import Unavailable

CODES: dict[type[Refused], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    TooManyRequests: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    Invalid: grpc.StatusCode.INVALID_ARGUMENT,
}

# Where a problem's location names the HTTP request's part, the gRPC field has none.
_HTTP_PARTS = {"body", "query", "path", "header"}


def field_path(loc: Sequence[str | int], renamed: Mapping[str, str]) -> str:
    """`("body", "vectors", 3, "vector")` as a proto field path, `records[3].vector` (with vectors -> records)."""
    parts = list(loc[1:] if loc and loc[0] in _HTTP_PARTS else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = renamed.get(part, part) if not path else part
            path += f".{name}" if path else name
    return path


def failure_status(exc: Exception, renamed: Mapping[str, str]) -> grpc.Status | None:
    """The status a failure answers, or None for one that is a bug (left to grpc: UNKNOWN, logged)."""
    if isinstance(exc, ValidationError):
        exc = Invalid([{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()])
    elif isinstance(exc, STORAGE_OUTAGES):
        exc = storage_unavailable(exc)
    if isinstance(exc, Invalid):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=field_path(p["loc"], renamed), description=p["msg"]
            )
            for p in exc.problems
        ]
        return _status(
            grpc.StatusCode.INVALID_ARGUMENT,
            exc.reason,
            error_details_pb2.BadRequest(field_violations=violations),
        )
    if isinstance(exc, TooManyRequests):
        return _status(CODES[TooManyRequests], exc.reason, _retry_info(exc.retry_after_s))
    if isinstance(exc, Refused):
        code = next(code for kind, code in CODES.items() if isinstance(exc, kind))
        return _status(code, exc.reason)
    if isinstance(exc, Unavailable):
        return _status(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_info(exc.retry_after_s))
    if isinstance(exc, NotPublished):
        reason = exc.message
        if exc.status is not None:
            reason += f"; operation {exc.operation_id} is {exc.status}"
        return _status(grpc.StatusCode.UNAVAILABLE, reason, _retry_info(exc.retry_after_s))
    return None


async def abort(
    context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status, also: tuple[tuple[str, str], ...] = ()
) -> NoReturn:
    """End the call with `status`, its details and `also` in the trailing metadata."""
    await context.abort(status.code, status.details, (*status.trailing_metadata, *also))
    raise AssertionError("abort returns only by raising")


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, math.ceil(seconds))))


def _status(code: grpc.StatusCode, message: str, *details: Any) -> grpc.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    )
