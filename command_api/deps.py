"""Dependencies of the command API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, cast
from uuid import NAMESPACE_URL, UUID, uuid5

from fastapi import Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import (
    FirstAttemptInFlight,
    IdempotencyKeyReused,
    Keyed,
    NotPublished,
    Submission,
    replay,
    submit,
)
from events import Command, RejectionCause
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.deps import ServicesDep, SessionDep, SettingsDep, TenantDep
from tributary.errors import AUTHENTICATED, ErrorResponse, invalid, problem, responses
from tributary.settings import Settings


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


def status_of(answer: Accepted) -> int:
    if answer.status == "accepted":
        return status.HTTP_202_ACCEPTED
    if answer.status == "applied":
        return status.HTTP_200_OK
    return REJECTION_STATUS[answer.rejection or "invalid"]


# What a write answers besides its 202 (stated on each write router): the outcome of `?wait=true`, the error
# codes, and for 404, 409 and 422 either the error shape or a rejected operation's `Accepted`.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_200_OK: {"model": Accepted, "description": "With `?wait=true`: the operation was applied"},
    **AUTHENTICATED,
    **responses(413),
    **responses(404, 409, 422, model=ErrorResponse | Accepted),
}


class Submitter:
    """Submits the command of the current request and sets the answer's status code (`status_of`): 202 while
    accepted, the outcome's once `?wait=true` saw it applied or rejected. With an Idempotency-Key the operation
    is found by the key, and the command's id derives from the tenant, the key and the request: the same
    request always makes the same command (one the applier recognises), and a key used again after its
    operation expired (command_api/retention.py) for another request makes a new one."""

    def __init__(
        self,
        session: AsyncSession,
        publisher: CommandPublisher,
        settings: Settings,
        wait: bool,
        tenant: str,
        keyed: Keyed | None,
    ) -> None:
        self._session, self._publisher, self._settings, self._wait = session, publisher, settings, wait
        self._tenant, self._keyed = tenant, keyed

    async def replay(self) -> Accepted | None:
        """The first answer, when this request retries one with the same Idempotency-Key."""
        if self._keyed is None:
            return None
        with _idempotency_errors():
            return await replay(
                self._tenant,
                self._keyed,
                self._session,
                wait=self._wait,
                timeout=self._settings.wait_timeout_s,
            )

    async def __call__(self, command: Command, response: Response, ids: list[str] | None = None) -> Accepted:
        if self._keyed is not None:
            command = command.model_copy(
                update={"id": _operation_id(self._tenant, self._keyed), "idempotency_key": self._keyed.key}
            )
        with _idempotency_errors():
            answer = await submit(
                Submission(command, self._keyed, ids),
                self._session,
                self._publisher,
                part_bytes=self._settings.command_part_bytes,
                wait=self._wait,
                timeout=self._settings.wait_timeout_s,
            )
        response.status_code = status_of(answer)
        return answer


async def get_submitter(
    request: Request,
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    tenant: TenantDep,
    wait: Annotated[
        bool, Query(description="Answer only once the write is applied (or the wait times out)")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=256,
            description="A retry with the same key and body gets the first answer; nothing is published again",
        ),
    ] = None,
) -> Submitter:
    keyed = None
    if idempotency_key is not None:
        # The request is identified by what it asks for, so a retry of a request that let the server
        # generate ids is still the same request.
        digest = hashlib.sha256(f"{tenant}\n{request.method}\n{request.url.path}\n".encode())
        digest.update(await request.body())
        keyed = Keyed(idempotency_key, digest.hexdigest())
    return Submitter(session, publisher, settings, wait, tenant, keyed)


SubmitDep = Annotated[Submitter, Depends(get_submitter)]


class ReplayedAnswer(Exception):
    def __init__(self, answer: Accepted) -> None:
        self.answer = answer


async def answer_retries_first(submit: SubmitDep) -> None:
    """Router dependency, so it runs before the route's own checks: a retry of a request that was accepted
    (same Idempotency-Key, same body) gets the first answer, even where the route would now say 409 or 404."""
    answer = await submit.replay()
    if answer is not None:
        raise ReplayedAnswer(answer)


def replayed_answer(_request: Request, exc: Exception) -> JSONResponse:
    answer = cast("ReplayedAnswer", exc).answer
    return JSONResponse(answer.model_dump(mode="json"), status_code=status_of(answer))


# Kafka is away: by then a replaced producer and the backed-off reconnects have had time to find it again.
RETRY_AFTER_S = 5


def not_published_answer(_request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After. The operation id and its status tell the client what became of the request: with
    "unconfirmed" it may still be applied (see GET /operations/{id}); a retry with the same Idempotency-Key
    publishes it again, and is applied once either way."""
    failure = cast("NotPublished", exc)
    code = status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(
        {
            "detail": [problem(code, f"the command could not be published, retry later ({failure.reason})")],
            "operation_id": failure.operation_id if failure.status is not None else None,
            "status": failure.status,
        },
        status_code=code,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _operation_id(tenant: str, keyed: Keyed) -> UUID:
    return uuid5(NAMESPACE_URL, f"tributary:idempotency:{tenant}:{keyed.key}:{keyed.request_hash}")


@contextmanager
def _idempotency_errors() -> Iterator[None]:
    try:
        yield
    except IdempotencyKeyReused:
        raise invalid(
            ("header", "idempotency-key"),
            "this Idempotency-Key was used for a different request; use a new key",
        ) from None
    except FirstAttemptInFlight:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the first request with this Idempotency-Key is in flight; retry"
        ) from None
