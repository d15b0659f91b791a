"""The composition root: builds the `Services` of one role from the settings, starts what runs in the
background, and registers every close on the caller's exit stack (in reverse order of opening); and installs
the process's OpenTelemetry SDK when the `OTEL_*` variables ask for traces (`configure_tracing`)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from functools import partial
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from threadpoolctl import threadpool_limits

from command_api.retention import purge_periodically
from command_api.schedules import run_schedules
from entrypoints.asyncapi import asyncapi_document
from entrypoints.embedded_bus import EmbeddedBus
from events import Topics
from query_api.cache import SearchCache
from query_api.consistency import EmbeddedBarrier, ReadBarrier
from query_api.follower import EventFollower
from query_api.indexer import Indexer
from query_api.past_versions import PastVersions
from query_api.registry import Projections, apply_events, load_all, save_all
from query_api.saved_graphs import GRAPHS_DIR, SavedGraphs
from query_api.services import ReadServices
from tributary import tracing
from tributary.audit import RefusalTally, flush_refusals, flush_refusals_periodically
from tributary.auth.authenticate import install_bootstrap_key
from tributary.auth.jwt import JwtVerifier
from tributary.auth.key_cache import KeyCache
from tributary.auth.rate_limit import RateLimiter, RateLimits
from tributary.backup_store import open_backup_store
from tributary.bus import CommandPublisher
from tributary.db.migrate import upgrade
from tributary.db.models import DatasetRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.embedding import Embedders
from tributary.health import Check, Readiness, database_answers
from tributary.kafka import (
    KafkaAuditSink,
    KafkaCommandPublisher,
    broker_answers,
    declare_channels,
    ensure_topics,
    make_broker,
)
from tributary.resilience import CircuitBreaker, Supervised, cancel
from tributary.services import Services
from tributary.settings import ApiRole, Role, Settings
from tributary.storage import DatasetStore
from workers.dead_letters import sample_dead_letters

log = logging.getLogger(__name__)

# Where the admin key made at the first start is written when stdout is no terminal, in `data_dir`.
ADMIN_KEY_FILE = "admin-key"

# The span exporter `OTEL_TRACES_EXPORTER=otlp` means for each `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`, as the
# SDK's own configuration (opentelemetry-instrument) reads them; the default is grpc.
OTLP_EXPORTERS = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def configure_tracing(role: Role) -> trace.TracerProvider | None:
    """Install the process's OpenTelemetry SDK (tributary/tracing.py) when `OTEL_TRACES_EXPORTER` names span
    exporters (`otlp`, `otlp_proto_http`, `console`, or any installed one); by default it names none and traces
    are off, unlike the SDK's own default (`otlp`), so nothing is sent to a collector nobody runs. The rest is
    read by the SDK from the standard variables: the OTLP endpoint, headers and protocol
    (`OTEL_EXPORTER_OTLP_*`), the sampler (`OTEL_TRACES_SAMPLER` and `_ARG`; default `parentbased_always_on`),
    the batching (`OTEL_BSP_*`), the resource (`OTEL_SERVICE_NAME`, default `tributary-<role>`, and
    `OTEL_RESOURCE_ATTRIBUTES`); `OTEL_SDK_DISABLED=true` turns it off. Once per process: a provider installed
    before (by an earlier app of this process, or a test) is the one returned. None when tracing is off."""
    installed = tracing.provider()
    if installed is not None or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return installed
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    exporters = [_span_exporter(name) for name in names if name and name != "none"]
    if not exporters:
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"tributary-{role}"}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global too, for any other library's instrumentation in the process.
    trace.set_tracer_provider(provider)
    tracing.install(provider)
    return provider


def _span_exporter(name: str) -> SpanExporter:
    if name == "otlp":
        protocol = (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        if protocol not in OTLP_EXPORTERS:
            raise RuntimeError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not one of {sorted(OTLP_EXPORTERS)}"
            )
        name = OTLP_EXPORTERS[protocol]
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise RuntimeError(f"OTEL_TRACES_EXPORTER: no installed package provides the span exporter {name!r}")
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def freeze_startup_heap(stack: AsyncExitStack) -> None:
    """Leave what the process holds once started (modules, classes, the services) out of the garbage collector's
    passes until `stack` closes. A 1,000-record write allocates enough objects to set off collections, and a full
    one walked every object of the started process: about half the CPU of checking a 1,000-record gRPC message.
    Unfrozen at the end, so what the role held becomes collectable again (tests start many in one process)."""
    gc.collect()
    gc.freeze()
    stack.callback(gc.unfreeze)


async def start_services(settings: Settings, role: ApiRole, stack: AsyncExitStack) -> Services:
    """The services of an HTTP role (embedded, command-api, query-api): `ReadServices` where it serves reads."""
    if role == "embedded":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_for(settings)
    stack.push_async_callback(engine.dispose)
    if role == "embedded":
        # One process owns its SQLite file, so it keeps the schema current itself.
        await upgrade(engine)
    sessions = make_sessionmaker(engine)
    database: dict[str, Check] = {"database": partial(database_answers, engine)}
    # A query replica serves reads from memory through a database outage (keys verified before it included):
    # degraded, not out of rotation.
    readiness = Readiness(optional=database) if role == "query-api" else Readiness(required=database)
    generated = await install_bootstrap_key(sessions, settings)
    if generated is not None:
        _show_once(generated, settings)
    embedders = Embedders(settings)
    stack.push_async_callback(embedders.aclose)
    store = DatasetStore(settings.resolved_storage_root, backups=open_backup_store(settings))
    if role in ("embedded", "command-api"):
        _in_background(stack, purge_periodically(sessions, settings.operation_retention_s))
    publisher: CommandPublisher | None = None
    read_side: tuple[Projections, ReadBarrier] | None = None
    if role in ("embedded", "query-api"):
        # A replica answers many searches at once: one BLAS thread each. OpenBLAS's own threads for one exact
        # scan spin against every other search's, and on a loaded 2-core machine took a 5% filtered search's
        # p50 from 2.5 to 15 ms (bench.filtered_http).
        threadpool_limits(1, user_api="blas")
    saved = SavedGraphs(settings.data_dir / GRAPHS_DIR, settings.graph_save_min_vectors)
    if role == "embedded":
        projections = Projections(store)
        await asyncio.to_thread(load_all, projections, store, await _catalog(sessions), saved)
        # Registered before the bus and the indexer start, so it runs once both have stopped.
        stack.push_async_callback(asyncio.to_thread, save_all, projections, saved)
        bus = EmbeddedBus(
            sessions, store, settings.default_tenant, on_events=partial(apply_events, projections)
        )
        await bus.start()
        stack.push_async_callback(bus.stop)
        readiness.required["bus"] = bus.ready
        publisher, read_side = bus, (projections, EmbeddedBarrier(bus))
        _index_in_background(stack, projections)
        counting = Supervised("dead-letter count", partial(sample_dead_letters, sessions), log)
        counting.start()
        stack.push_async_callback(counting.stop)
    elif role == "command-api":
        broker = make_broker(settings, client_id="tributary-command-api")
        channels = declare_channels(broker, Topics(settings.topic_prefix))
        await ensure_topics(settings)
        await broker.connect()
        stack.push_async_callback(broker.stop)
        kafka_publisher = KafkaCommandPublisher(channels.topics, settings)
        stack.push_async_callback(kafka_publisher.close)
        publisher = kafka_publisher
        readiness.required["kafka"] = lambda: broker_answers(broker)
        readiness.required["kafka_publish"] = kafka_publisher.ready
    else:
        await ensure_topics(settings)
        projections = Projections(store)
        follower = EventFollower(settings, projections, store, saved)
        await follower.start(lambda: _catalog(sessions))
        # Only once the load is done: a start that fails half way would otherwise save what little it loaded and
        # remove the saves of every dataset it had not loaded yet. Runs after the follower stops.
        stack.push_async_callback(asyncio.to_thread, save_all, projections, saved)
        stack.push_async_callback(follower.stop)
        readiness.required["events"] = follower.ready
        read_side = projections, follower
        _index_in_background(stack, projections)
    if publisher is not None:
        _in_background(stack, run_schedules(sessions, publisher, embedders, settings))
    redis = None
    if settings.redis_url:
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        stack.push_async_callback(redis.aclose)
        readiness.optional["redis"] = partial(_redis_answers, redis)
    audit_sink = None
    if role != "embedded":
        audit_sink = KafkaAuditSink(settings)
        stack.push_async_callback(audit_sink.stop)
    redis_breaker = CircuitBreaker("Redis")
    common: dict[str, Any] = dict(
        settings=settings,
        engine=engine,
        sessions=sessions,
        readiness=readiness,
        jwt_verifier=JwtVerifier.from_settings(settings),
        key_cache=KeyCache(settings.key_cache_ttl_s, settings.key_grace_s),
        embedders=embedders,
        rate_limiter=(
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
        ),
        refusals=RefusalTally(),
        audit_sink=audit_sink,
        asyncapi=asyncapi_document(settings),
        publisher=publisher,
    )
    services = (
        Services(**common)
        if read_side is None
        else ReadServices(
            **common,
            projections=read_side[0],
            barrier=read_side[1],
            search_cache=SearchCache(redis, redis_breaker),
            past_versions=PastVersions(store, settings.past_versions_memory_bytes),
            store=store,
        )
    )
    # Registered after the database and the audit sink, so the last count is written before they close.
    stack.push_async_callback(flush_refusals, services)
    _in_background(stack, flush_refusals_periodically(services))
    return services


def _show_once(key: str, settings: Settings) -> None:
    """The admin key made at the first start (only its hash is kept), shown once: on the terminal, or where no
    one reads stdout (a service, a container), in a file only this user may read, never in a log line."""
    if sys.stdout.isatty():
        print(f"Tributary admin key (shown once, keep it): {key}", flush=True)
        return
    path = settings.data_dir / ADMIN_KEY_FILE
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a file of another's making keeps its mode: make a new one
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
    except OSError as exc:
        log.error(
            "made an admin key but could not write it to %s (%s): make another with `tributary keys create "
            "--admin`",
            path,
            exc,
        )
        return
    log.warning(
        "made an admin key, written to %s (readable by this user only): keep it and delete the file", path
    )


def _in_background(stack: AsyncExitStack, work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)

    stack.push_async_callback(cancel, task)


def _index_in_background(stack: AsyncExitStack, projections: Projections) -> None:
    indexer = Indexer(projections)
    indexer.start()
    stack.callback(indexer.stop)


async def _catalog(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(select(DatasetRow.tenant, DatasetRow.name))
        return [(tenant, name) for tenant, name in rows]


async def _redis_answers(redis: Redis | None) -> bool:
    if redis is None:
        return False
    return bool(await redis.ping())
