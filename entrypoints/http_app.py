"""The HTTP application for embedded mode and for the command-api and query-api roles."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import cast

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from command_api.deps import ReplayedAnswer, not_published_answer, replayed_answer
from command_api.operations import NotPublished
from command_api.routes import datasets as command_datasets
from command_api.routes import dead_letters
from command_api.routes import keys as command_keys
from command_api.routes import snapshots as command_snapshots
from command_api.routes import vectors as command_vectors
from entrypoints import health
from entrypoints.bootstrap import configure_tracing, freeze_startup_heap, start_services
from entrypoints.grpc_api.server import start_grpc
from query_api.routes import admin, catalog, search
from query_api.routes import snapshots as read_snapshots
from tributary import __version__, errors, http_hygiene, logs, metrics
from tributary.audit import AuditMiddleware
from tributary.http_metrics import HttpMetrics
from tributary.http_tracing import HttpTracing
from tributary.settings import ApiRole, Settings

WORKER_ROLE_VARIABLE = "TRIBUTARY_SERVE_ROLE"


def create_app(settings: Settings, role: ApiRole = "embedded") -> FastAPI:
    traced = configure_tracing(role)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # The one thing on app.state: tributary/deps.py gives the routes its parts as typed dependencies.
            services = app.state.services = await start_services(settings, role, stack)
            if settings.grpc_port:
                # `--workers N` processes serve one gRPC port together, as uvicorn shares the HTTP one.
                await start_grpc(services, stack, shared_port=WORKER_ROLE_VARIABLE in os.environ)
            freeze_startup_heap(stack)
            yield

    # FastAPI's own telemetry stays off: it would trace (and meter) every request once a tracer provider is
    # installed, beside HttpTracing, and it costs each request a look at the providers even when none is.
    off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Tributary", version=__version__, lifespan=lifespan, telemetry=off)
    errors.install(app)
    app.add_middleware(AuditMiddleware)
    http_hygiene.install(app, settings)
    # Added after the others, so outermost of them: it times and counts every answer, a refusal by the others
    # included.
    app.add_middleware(HttpMetrics)
    if traced is not None:
        # Outermost of all: the request's span is current in every middleware and route.
        app.add_middleware(HttpTracing)
    app.include_router(health.router)
    if role in ("embedded", "command-api"):
        app.add_exception_handler(ReplayedAnswer, replayed_answer)
        app.add_exception_handler(NotPublished, not_published_answer)
        app.include_router(command_datasets.router)
        app.include_router(command_vectors.router)
        app.include_router(command_keys.router)
        app.include_router(command_snapshots.router)
        app.include_router(command_snapshots.schedules)
        app.include_router(dead_letters.router)
    if role in ("embedded", "query-api"):
        app.include_router(catalog.router)
        app.include_router(search.router)
        app.include_router(admin.router)
        app.include_router(read_snapshots.router)
    return app


def app_for_worker() -> FastAPI:
    """The app of one `tributary serve --workers N` process, for the role the parent put in the environment."""
    metrics.forget_this_process_at_exit()
    role = os.environ[WORKER_ROLE_VARIABLE]
    if role not in ("command-api", "query-api"):
        raise RuntimeError(f"no worker processes for role {role!r}")
    settings = Settings()
    logs.configure(role, logs.resolve_format(settings.log_format, role))
    return create_app(settings, cast(ApiRole, role))
