"""FastAPI dependencies shared by the command and query APIs, as typed aliases.

They are `async def` even where they do not await: FastAPI runs a plain `def` dependency in its thread pool,
and the hops cost about 1 ms a request on this machine (measured on a cached search).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tributary.embedding import Embedders
from tributary.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_embedders(request: Request) -> Embedders:
    embedders: Embedders = request.app.state.embedders
    return embedders


async def get_tenant(settings: Annotated[Settings, Depends(get_settings)]) -> str:
    # Until authentication lands, every request acts for the default tenant.
    return settings.default_tenant


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TenantDep = Annotated[str, Depends(get_tenant)]
EmbeddersDep = Annotated[Embedders, Depends(get_embedders)]
