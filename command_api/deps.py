"""Dependencies of the command API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, cast
from uuid import NAMESPACE_URL, UUID, uuid5

from fastapi import Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import FirstAttemptInFlight, IdempotencyKeyReused, Submission, replay, submit
from events import Command
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.deps import SessionDep, SettingsDep, TenantDep
from tributary.settings import Settings


async def get_publisher(request: Request) -> CommandPublisher:
    publisher: CommandPublisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]


class Submitter:
    """Submits the command of the current request and sets the answer's status code: 202 while accepted,
    200 once `?wait=true` saw it applied or rejected. With an Idempotency-Key the command's id derives from
    the tenant and the key, so a retry finds the first attempt's operation."""

    def __init__(
        self,
        session: AsyncSession,
        publisher: CommandPublisher,
        settings: Settings,
        wait: bool,
        tenant: str,
        idempotency: tuple[str, str] | None,
    ) -> None:
        self._session, self._publisher, self._settings, self._wait = session, publisher, settings, wait
        self._tenant, self._idempotency = tenant, idempotency

    async def replay(self) -> Accepted | None:
        """The first answer, when this request retries one with the same Idempotency-Key."""
        if self._idempotency is None:
            return None
        key, request_hash = self._idempotency
        with _idempotency_errors():
            return await replay(
                str(_operation_id(self._tenant, key)),
                request_hash,
                self._session,
                wait=self._wait,
                timeout=self._settings.wait_timeout_s,
            )

    async def __call__(self, command: Command, response: Response, ids: list[str] | None = None) -> Accepted:
        request_hash = None
        if self._idempotency is not None:
            key, request_hash = self._idempotency
            command = command.model_copy(
                update={"id": _operation_id(self._tenant, key), "idempotency_key": key}
            )
        with _idempotency_errors():
            answer = await submit(
                Submission(command, request_hash, ids),
                self._session,
                self._publisher,
                part_bytes=self._settings.command_part_bytes,
                wait=self._wait,
                timeout=self._settings.wait_timeout_s,
            )
        if answer.status != "accepted":
            response.status_code = status.HTTP_200_OK
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
    idempotency = None
    if idempotency_key is not None:
        # The request is identified by what it asks for, so a retry of a request that let the server
        # generate ids is still the same request.
        digest = hashlib.sha256(f"{tenant}\n{request.method}\n{request.url.path}\n".encode())
        digest.update(await request.body())
        idempotency = (idempotency_key, digest.hexdigest())
    return Submitter(session, publisher, settings, wait, tenant, idempotency)


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
    code = status.HTTP_202_ACCEPTED if answer.status == "accepted" else status.HTTP_200_OK
    return JSONResponse(answer.model_dump(mode="json"), status_code=code)


def _operation_id(tenant: str, key: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"tributary:idempotency:{tenant}:{key}")


@contextmanager
def _idempotency_errors() -> Iterator[None]:
    try:
        yield
    except IdempotencyKeyReused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was used for a different request; use a new key",
        ) from None
    except FirstAttemptInFlight:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the first request with this Idempotency-Key is in flight; retry"
        ) from None
