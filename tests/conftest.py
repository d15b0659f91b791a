from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests import models, services
from tests.helpers import ADMIN_KEY
from tributary import tracing
from tributary.db.migrate import upgrade
from tributary.db.session import engine_for
from tributary.settings import Settings

# Many apps and `tributary serve` processes run side by side in the tests: none opens the default gRPC port.
# The gRPC tests (tests/test_grpc_api.py) give theirs a free one.
os.environ["TRIBUTARY_GRPC_PORT"] = "0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test needs Kafka exactly when it uses the broker fixture, directly or through another fixture
    # (distributed_settings): marked here, `pytest -m "not kafka"` runs the rest without a broker.
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("local_model"):
        models.require_local_model()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with services.kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with services.postgres() as url:
        yield url


@pytest.fixture(scope="session")
def s3_service() -> services.S3Service:
    return services.s3()


@pytest.fixture
def run_id() -> str:
    """Unique per test: names its topics and its database schema, so runs cannot see each other."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pg_schema(postgres_url: str, run_id: str) -> AsyncIterator[str]:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{run_id}"'))
    yield run_id
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA "{run_id}" CASCADE'))
    await engine.dispose()


@pytest.fixture
async def distributed_settings(
    tmp_path: Path, kafka_bootstrap: str, postgres_url: str, redis_url: str, pg_schema: str, run_id: str
) -> AsyncIterator[Settings]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        storage_root=str(tmp_path / "datasets"),
        database_url=postgres_url,
        database_schema=pg_schema,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        # Rate limits stay on, above what any test sends (tests/test_security.py checks them at low limits).
        rate_limit_key_reads_per_s=5000,
        rate_limit_key_reads_burst=10000,
        rate_limit_key_writes_per_s=5000,
        rate_limit_key_writes_burst=10000,
        rate_limit_tenant_reads_per_s=5000,
        rate_limit_tenant_reads_burst=10000,
        rate_limit_tenant_writes_per_s=5000,
        rate_limit_tenant_writes_burst=10000,
        topic_prefix=run_id,
        command_partitions=4,
        admin_key=ADMIN_KEY,
        wait_timeout_s=20,
    )
    engine = engine_for(settings)
    await upgrade(engine)
    await engine.dispose()
    yield settings


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path / "data", wait_timeout_s=20, admin_key=ADMIN_KEY
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span recorded while the test runs: tracing is on for this test alone (sampled at 100%), as
    entrypoints/bootstrap.configure_tracing turns it on from the OTEL_* variables, and every app or worker the
    test starts records with it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()
