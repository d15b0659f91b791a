"""Dependencies of the command API."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from command_api.operations import MAX_IDEMPOTENCY_KEY, Keyed, NotPublished
from command_api.writes import Writer
from events import RejectionCause
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.deps import ServicesDep, SessionDep, TenantDep
from tributary.errors import AUTHENTICATED, ErrorResponse, problem, responses


async def get_publisher(services: ServicesDep) -> CommandPublisher:
    if services.publisher is None:
        raise RuntimeError("this role takes no writes")
    return services.publisher


PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]


# A rejected operation answers the code that fits why; the body is the same `Accepted` (status "rejected").
REJECTION_STATUS: dict[RejectionCause, int] = {
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "invalid": status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def http_status(answer: Accepted) -> int:
    """202 while accepted, the outcome's code once `?wait=true` saw it applied or rejected."""
    if answer.status == "accepted":
        return status.HTTP_202_ACCEPTED
    if answer.status == "applied":
        return status.HTTP_200_OK
    return REJECTION_STATUS[answer.rejection or "invalid"]


def status_of(answer: Accepted, response: Response) -> Accepted:
    """The answer, with the response's status code set to `http_status`."""
    response.status_code = http_status(answer)
    return answer


# What a write answers besides its 202 (stated on each write router): the outcome of `?wait=true`, the error
# codes, and for 404, 409 and 422 either the error shape or a rejected operation's `Accepted`.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_200_OK: {"model": Accepted, "description": "With `?wait=true`: the operation was applied"},
    **AUTHENTICATED,
    **responses(413),
    **responses(404, 409, 422, model=ErrorResponse | Accepted),
}


async def get_writer(
    request: Request,
    session: SessionDep,
    publisher: PublisherDep,
    services: ServicesDep,
    tenant: TenantDep,
    wait: Annotated[
        bool, Query(description="Answer only once the write is applied (or the wait times out)")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            description="A retry with the same key and body gets the first answer; nothing is published again",
        ),
    ] = None,
) -> Writer:
    keyed = None
    if idempotency_key is not None:
        # The request is identified by what it asks for, so a retry of a request that let the server
        # generate ids is still the same request.
        digest = hashlib.sha256(f"{tenant}\n{request.method}\n{request.url.path}\n".encode())
        digest.update(await request.body())
        keyed = Keyed(idempotency_key, digest.hexdigest())
    return Writer(tenant, session, publisher, services.embedders, services.settings, keyed, wait)


WriterDep = Annotated[Writer, Depends(get_writer)]


class ReplayedAnswer(Exception):
    def __init__(self, answer: Accepted) -> None:
        self.answer = answer


async def answer_retries_first(writer: WriterDep) -> None:
    """Router dependency, so it runs before the route's own checks: a retry of a request that was accepted
    (same Idempotency-Key, same body) gets the first answer, even where the route would now say 409 or 404."""
    answer = await writer.replay()
    if answer is not None:
        raise ReplayedAnswer(answer)


def replayed_answer(_request: Request, exc: Exception) -> JSONResponse:
    answer = cast("ReplayedAnswer", exc).answer
    return JSONResponse(answer.model_dump(mode="json"), status_code=http_status(answer))


def not_published_answer(_request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After. The operation id and its status tell the client what became of the request: with
    "unconfirmed" it may still be applied (see GET /operations/{id}); a retry with the same Idempotency-Key
    publishes it again, and is applied once either way."""
    failure = cast("NotPublished", exc)
    code = status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(
        {
            "detail": [problem(code, failure.message)],
            "operation_id": failure.operation_id if failure.status is not None else None,
            "status": failure.status,
        },
        status_code=code,
        headers={"Retry-After": str(failure.retry_after_s)},
    )
