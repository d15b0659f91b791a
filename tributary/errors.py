"""Error answers: a 422 lists each problem's location and reason, without echoing the input back (it can be
megabytes of vectors, or NaN, which JSON cannot even carry)."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tributary.resilience import Unavailable


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def dependency_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A dependency that went away is a 503 that names it, with when to retry; never a 500."""
    assert isinstance(exc, Unavailable)
    return JSONResponse(
        {"detail": str(exc)},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(math.ceil(exc.retry_after_s))},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Unavailable, dependency_unavailable)
