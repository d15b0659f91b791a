"""The api_keys table as migration 0004 makes it: a key is found by prefix, checked by hash, prefixes unique."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tributary.auth.keys import matches, new_key, parse
from tributary.db.migrate import alembic_config, upgrade
from tributary.db.models import ApiKeyRow, Base
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings


@pytest.fixture
async def engine(embedded_settings: Settings) -> AsyncIterator[AsyncEngine]:
    embedded_settings.data_dir.mkdir(parents=True)
    engine = engine_for(embedded_settings)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_migrations_make_the_tables_the_models_describe(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert differences == []


async def test_a_key_is_found_by_prefix_and_checked_by_hash(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    made = new_key()
    async with sessions.begin() as session:
        session.add(
            ApiKeyRow(
                id=str(uuid.uuid4()),
                prefix=made.prefix,
                hash=made.hash,
                tenant="acme",
                roles=["writer"],
                datasets=["docs"],
            )
        )
    parsed = parse(made.key)
    assert parsed is not None
    async with sessions() as session:
        row = (await session.execute(select(ApiKeyRow).where(ApiKeyRow.prefix == parsed.prefix))).scalar_one()
    assert matches(parsed.secret, row.hash)
    assert (row.tenant, row.roles, row.datasets, row.revoked_at) == ("acme", ["writer"], ["docs"], None)
    assert row.created_at is not None

    async with sessions.begin() as session:
        stored = await session.get_one(ApiKeyRow, row.id)
        stored.revoked_at = datetime.now(UTC)
    async with sessions() as session:
        assert (await session.get_one(ApiKeyRow, row.id)).revoked_at is not None


async def test_prefixes_are_unique(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    first, second = new_key(), new_key()
    async with sessions.begin() as session:
        session.add(ApiKeyRow(id="1", prefix=first.prefix, hash=first.hash, tenant="a", roles=["reader"]))
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(
                ApiKeyRow(id="2", prefix=first.prefix, hash=second.hash, tenant="a", roles=["reader"])
            )


async def test_migration_0004_downgrades(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0003"))
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "api_keys" not in tables and "datasets" in tables
