"""The HTTP application for embedded mode and for the command-api and query-api roles."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, Literal

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from command_api.deps import ReplayedAnswer, not_published_answer, replayed_answer
from command_api.operations import NotPublished
from command_api.retention import purge_periodically
from command_api.routes import datasets as command_datasets
from command_api.routes import keys as command_keys
from command_api.routes import vectors as command_vectors
from events import Topics
from query_api.cache import SearchCache
from query_api.consistency import EmbeddedBarrier
from query_api.follower import EventFollower
from query_api.indexer import Indexer
from query_api.registry import Projections, apply_events, load_all
from query_api.routes import admin, catalog, search
from tributary import __version__, errors, health, http_hygiene, logs
from tributary.asyncapi import asyncapi_document
from tributary.audit import (
    AuditMiddleware,
    RefusalTally,
    flush_refusals,
    flush_refusals_periodically,
)
from tributary.auth.authenticate import install_bootstrap_key
from tributary.auth.jwt import JwtVerifier
from tributary.auth.key_cache import KeyCache
from tributary.auth.rate_limit import RateLimiter, RateLimits
from tributary.db.migrate import upgrade
from tributary.db.models import DatasetRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.embedded_bus import EmbeddedBus
from tributary.embedding import Embedders
from tributary.kafka import (
    KafkaAuditSink,
    KafkaCommandPublisher,
    declare_channels,
    ensure_topics,
    make_broker,
)
from tributary.resilience import CircuitBreaker
from tributary.settings import Settings
from tributary.storage import DatasetStore

ApiRole = Literal["embedded", "command-api", "query-api"]
WORKER_ROLE_VARIABLE = "TRIBUTARY_SERVE_ROLE"


def create_app(settings: Settings, role: ApiRole = "embedded") -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if role == "embedded":
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = engine_for(settings)
            stack.push_async_callback(engine.dispose)
            if role == "embedded":
                # One process owns its SQLite file, so it keeps the schema current itself.
                await upgrade(engine)
            sessions = make_sessionmaker(engine)
            app.state.settings = settings
            app.state.sessions = sessions
            app.state.asyncapi = asyncapi_document(settings)
            database = {"database": lambda: health.database_answers(engine)}
            # A query replica serves reads from memory through a database outage (keys verified before it
            # included): degraded, not out of rotation.
            app.state.readiness = {} if role == "query-api" else database
            app.state.optional_readiness = database if role == "query-api" else {}
            app.state.jwt_verifier = JwtVerifier.from_settings(settings)
            app.state.key_cache = KeyCache(settings.key_cache_ttl_s, settings.key_grace_s)
            generated = await install_bootstrap_key(sessions, settings)
            if generated is not None:
                # Printed once, at the first start: only its hash is kept.
                print(f"Tributary admin key (shown once, keep it): {generated}", flush=True)
            app.state.embedders = Embedders(settings)
            stack.push_async_callback(app.state.embedders.aclose)
            store = DatasetStore(settings.resolved_storage_root)
            if role in ("embedded", "command-api"):
                _in_background(stack, purge_periodically(sessions, settings.operation_retention_s))
            if role == "embedded":
                projections = Projections()
                await asyncio.to_thread(load_all, projections, store, await _catalog(sessions))
                bus = EmbeddedBus(sessions, store, on_events=partial(apply_events, projections))
                await bus.start()
                stack.push_async_callback(bus.stop)
                app.state.readiness["bus"] = bus.ready
                app.state.publisher = bus
                app.state.projections, app.state.barrier = projections, EmbeddedBarrier(bus)
                _index_in_background(stack, projections)
            elif role == "command-api":
                broker = make_broker(settings, client_id="tributary-command-api")
                channels = declare_channels(broker, Topics(settings.topic_prefix))
                await ensure_topics(settings)
                await broker.connect()
                stack.push_async_callback(broker.stop)
                publisher = KafkaCommandPublisher(channels.topics, settings)
                stack.push_async_callback(publisher.close)
                app.state.publisher = publisher
                app.state.readiness["kafka"] = lambda: broker.ping(timeout=1.0)
                app.state.readiness["kafka_publish"] = publisher.ready
            elif role == "query-api":
                await ensure_topics(settings)
                projections = Projections()
                follower = EventFollower(settings, projections, store)
                await follower.start(lambda: _catalog(sessions))
                stack.push_async_callback(follower.stop)
                app.state.readiness["events"] = follower.ready
                app.state.projections, app.state.barrier = projections, follower
                _index_in_background(stack, projections)
            redis = None
            if settings.redis_url:
                redis = Redis.from_url(
                    settings.redis_url,
                    socket_timeout=settings.redis_timeout_s,
                    socket_connect_timeout=settings.redis_timeout_s,
                )
                stack.push_async_callback(redis.aclose)
                app.state.optional_readiness["redis"] = lambda: _redis_answers(redis)
            if role != "embedded":
                sink = KafkaAuditSink(settings)
                stack.push_async_callback(sink.stop)
                app.state.audit_sink = sink
            redis_breaker = CircuitBreaker("Redis")
            app.state.search_cache = SearchCache(redis, redis_breaker)
            app.state.rate_limiter = (
                RateLimiter(
                    redis,
                    RateLimits.from_settings(settings),
                    fail_open=settings.rate_limit_fail_open,
                    # Deployments sharing a Redis keep their buckets apart.
                    namespace=settings.topic_prefix,
                    breaker=redis_breaker,
                )
                if redis is not None and settings.rate_limit_enabled
                else None
            )
            # Registered after the database and the audit sink, so the last count is written before they close.
            app.state.refusals = RefusalTally()
            stack.push_async_callback(flush_refusals, app)
            _in_background(stack, flush_refusals_periodically(app))
            yield

    app = FastAPI(title="Tributary", version=__version__, lifespan=lifespan)
    errors.install(app)
    app.add_middleware(AuditMiddleware)
    http_hygiene.install(app, settings)
    app.include_router(health.router)
    if role in ("embedded", "command-api"):
        app.add_exception_handler(ReplayedAnswer, replayed_answer)
        app.add_exception_handler(NotPublished, not_published_answer)
        app.include_router(command_datasets.router)
        app.include_router(command_vectors.router)
        app.include_router(command_keys.router)
    if role in ("embedded", "query-api"):
        app.include_router(catalog.router)
        app.include_router(search.router)
        app.include_router(admin.router)
    return app


def _in_background(stack: AsyncExitStack, work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(cancel)


def _index_in_background(stack: AsyncExitStack, projections: Projections) -> None:
    indexer = Indexer(projections)
    indexer.start()
    stack.callback(indexer.stop)


def app_for_worker() -> FastAPI:
    """The app of one `tributary serve --workers N` process, for the role the parent put in the environment."""
    logs.configure()
    role = os.environ[WORKER_ROLE_VARIABLE]
    if role not in ("command-api", "query-api"):
        raise RuntimeError(f"no worker processes for role {role!r}")
    return create_app(Settings(), role)  # type: ignore[arg-type]


async def _catalog(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(select(DatasetRow.tenant, DatasetRow.name))
        return [(tenant, name) for tenant, name in rows]


async def _redis_answers(redis: Redis | None) -> bool:
    if redis is None:
        return False
    return bool(await redis.ping())
