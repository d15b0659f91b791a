"""Dependencies of the command API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tributary.bus import CommandPublisher


def get_publisher(request: Request) -> CommandPublisher:
    publisher: CommandPublisher = request.app.state.publisher
    return publisher


PublisherDep = Annotated[CommandPublisher, Depends(get_publisher)]
