"""The HTTP application for embedded mode and for the command-api and query-api roles."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import cast

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from command_api.deps import ReplayedAnswer, not_published_answer, replayed_answer
from command_api.operations import NotPublished
from command_api.routes import datasets as command_datasets
from command_api.routes import keys as command_keys
from command_api.routes import snapshots as command_snapshots
from command_api.routes import vectors as command_vectors
from entrypoints import health
from entrypoints.bootstrap import configure_tracing, start_services
from entrypoints.grpc_api.server import start_grpc
from query_api.routes import admin, catalog, search
from query_api.routes import snapshots as read_snapshots
from tributary import __version__, errors, http_hygiene, logs, metrics
from tributary.audit import AuditMiddleware
from tributary.http_metrics import HttpMetrics
from tributary.settings import ApiRole, Settings

WORKER_ROLE_VARIABLE = "TRIBUTARY_SERVE_ROLE"
# Probes and scrapes are not traced: they would be most of the traces and say nothing (regular expressions
# searched in the URL).
UNTRACED = "/healthz$,/readyz$,/metrics$"


def create_app(settings: Settings, role: ApiRole = "embedded") -> FastAPI:
    traced = configure_tracing(role)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # The one thing on app.state: tributary/deps.py gives the routes its parts as typed dependencies.
            services = app.state.services = await start_services(settings, role, stack)
            if settings.grpc_port:
                # `--workers N` processes serve one gRPC port together, as uvicorn shares the HTTP one.
                await start_grpc(
                    services, stack, shared_port=WORKER_ROLE_VARIABLE in os.environ, traced=traced
                )
            yield

    app = FastAPI(title="Tributary", version=__version__, lifespan=lifespan)
    errors.install(app)
    app.add_middleware(AuditMiddleware)
    http_hygiene.install(app, settings)
    # Added last, so outermost of these: it times and counts every answer, a refusal by the others included.
    app.add_middleware(HttpMetrics)
    if traced is not None:
        # Outermost of all: a request's span is current in every middleware and route, and its trace id is in
        # every line they log. Each request is a server span; the ASGI messages are no spans of their own.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=traced, excluded_urls=UNTRACED, exclude_spans=["receive", "send"]
        )
    app.include_router(health.router)
    if role in ("embedded", "command-api"):
        app.add_exception_handler(ReplayedAnswer, replayed_answer)
        app.add_exception_handler(NotPublished, not_published_answer)
        app.include_router(command_datasets.router)
        app.include_router(command_vectors.router)
        app.include_router(command_keys.router)
        app.include_router(command_snapshots.router)
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
