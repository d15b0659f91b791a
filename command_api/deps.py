"""Dependencies of the command API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import submit
from events import Command
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.deps import SessionDep, SettingsDep
from tributary.settings import Settings


def get_publisher(request: Request) -> CommandPublisher:
    publisher: CommandPublisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]


class Submitter:
    """Submits one command for the current request and sets the answer's status code: 202 while accepted,
    200 once `?wait=true` saw it applied or rejected."""

    def __init__(
        self, session: AsyncSession, publisher: CommandPublisher, settings: Settings, wait: bool
    ) -> None:
        self._session, self._publisher, self._settings, self._wait = session, publisher, settings, wait

    async def __call__(self, command: Command, response: Response) -> Accepted:
        answer = await submit(
            command, self._session, self._publisher, wait=self._wait, timeout=self._settings.wait_timeout_s
        )
        if answer.status != "accepted":
            response.status_code = status.HTTP_200_OK
        return answer


def get_submitter(
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    wait: Annotated[
        bool, Query(description="Answer only once the write is applied (or the wait times out)")
    ] = False,
) -> Submitter:
    return Submitter(session, publisher, settings, wait)


SubmitDep = Annotated[Submitter, Depends(get_submitter)]
