"""Dependencies of the command API."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import NAMESPACE_URL, uuid5

from fastapi import Depends, Header, HTTPException, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import FirstAttemptInFlight, IdempotencyKeyReused, Submission, submit
from events import Command
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.deps import SessionDep, SettingsDep, TenantDep
from tributary.settings import Settings


def get_publisher(request: Request) -> CommandPublisher:
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
        idempotency: tuple[str, str] | None,
    ) -> None:
        self._session, self._publisher, self._settings, self._wait = session, publisher, settings, wait
        self._idempotency = idempotency

    async def __call__(self, command: Command, response: Response, ids: list[str] | None = None) -> Accepted:
        request_hash = None
        if self._idempotency is not None:
            key, request_hash = self._idempotency
            operation = uuid5(NAMESPACE_URL, f"tributary:idempotency:{command.tenant}:{key}")
            command = command.model_copy(update={"id": operation, "idempotency_key": key})
        try:
            answer = await submit(
                Submission(command, request_hash, ids),
                self._session,
                self._publisher,
                part_bytes=self._settings.command_part_bytes,
                wait=self._wait,
                timeout=self._settings.wait_timeout_s,
            )
        except IdempotencyKeyReused:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "this Idempotency-Key was used for a different request; use a new key",
            ) from None
        except FirstAttemptInFlight:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "the first request with this Idempotency-Key is in flight; retry"
            ) from None
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
    return Submitter(session, publisher, settings, wait, idempotency)


SubmitDep = Annotated[Submitter, Depends(get_submitter)]
