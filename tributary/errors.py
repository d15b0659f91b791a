"""Error answers: every error, whatever raised it, is `{"detail": [{"type", "loc", "msg"}]}` with the security
headers. A 422 lists each problem's location and reason, without echoing the input back (it can be megabytes
of vectors, or NaN, which JSON cannot even carry); other errors hold one problem, its type named after the
status (`not_found`, `conflict`, ...)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

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


class Problem(BaseModel):
    type: str = Field(
        description="What kind of problem: a validation error type, or the status, e.g. not_found"
    )
    loc: list[str | int] = Field(description='Where in the request, e.g. ["body", "vectors", 0, "vector"]')
    msg: str


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    detail: list[Problem]


def responses(*codes: int, model: Any = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of routes that answer these error codes (by default with the one error shape)."""
    return {code: {"model": model, "description": HTTPStatus(code).phrase} for code in codes}


# What every route behind a credential may answer: no or a bad credential, not allowed, a bad request, too many
# requests. Stated on each router.
AUTHENTICATED = responses(401, 403, 422, 429)


def error_response(
    code: int, problems: Sequence[Mapping[str, Any]], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    detail = [{"type": p["type"], "loc": list(p.get("loc", ())), "msg": p["msg"]} for p in problems]
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def problem(code: int, message: str, loc: Sequence[str | int] = ()) -> dict[str, Any]:
    return {
        "type": HTTPStatus(code).phrase.lower().replace(" ", "_").replace("-", "_"),
        "loc": loc,
        "msg": message,
    }


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.errors())


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, [problem(exc.status_code, str(exc.detail))], headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the routes whose path names this one most closely (the fewest path parameters). Starlette
    names the first route whose pattern matches, so `/vectors/get` (POST) answered `Allow: PATCH` because
    `/vectors/{vector_id}` matches it too."""
    path = request.scope["path"]
    matching = [
        context
        for context in iter_route_contexts(request.app.router.routes)
        if context.path is not None and compile_path(context.path)[0].match(path)
    ]
    closest = min((context.path.count("{") for context in matching if context.path), default=0)
    methods = {
        method
        for context in matching
        if context.path is not None and context.path.count("{") == closest
        for method in context.methods or ()
    }
    return sorted(methods)


# What each refusal of the services (tributary/failures.py) answers over HTTP.
REFUSAL_STATUS: dict[type[Refused], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Unauthenticated: status.HTTP_401_UNAUTHORIZED,
    Forbidden: status.HTTP_403_FORBIDDEN,
    TooManyRequests: status.HTTP_429_TOO_MANY_REQUESTS,
    TimedOut: status.HTTP_504_GATEWAY_TIMEOUT,
}


async def refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    if isinstance(exc, Invalid):
        return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.problems)
    code = next(code for kind, code in REFUSAL_STATUS.items() if isinstance(exc, kind))
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, TooManyRequests):
        headers = exc.headers
    return error_response(code, [problem(code, exc.reason)], headers)


async def dependency_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A dependency that went away is a 503 that names it, with when to retry; never a 500."""
    assert isinstance(exc, Unavailable)
    code = status.HTTP_503_SERVICE_UNAVAILABLE
    return error_response(code, [problem(code, str(exc))], {"Retry-After": str(math.ceil(exc.retry_after_s))})


async def storage_outage(request: Request, exc: Exception) -> JSONResponse:
    return await dependency_unavailable(request, storage_unavailable(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Unavailable, dependency_unavailable)
    for outage in STORAGE_OUTAGES:
        app.add_exception_handler(outage, storage_outage)
    app.add_exception_handler(Refused, refused)
