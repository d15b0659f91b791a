"""Alembic environment: runs on a connection handed in by tributary.db.migrate, or on the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from tributary.db.models import Base
from tributary.db.session import engine_for
from tributary.settings import Settings

target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_on_settings() -> None:
    settings = Settings()
    engine = engine_for(settings)
    async with engine.begin() as connection:
        await connection.run_sync(run)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    asyncio.run(run_on_settings())
