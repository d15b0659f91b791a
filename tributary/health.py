"""Open routes: liveness, readiness with dependency checks, metrics, and the AsyncAPI document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from query_api.registry import Projections

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A required dependency is failing (same body)"}})
async def readiness(request: Request, response: Response) -> dict[str, Any]:
    required: dict[str, Check] = request.app.state.readiness
    optional: dict[str, Check] = request.app.state.optional_readiness
    checks = {**required, **optional}
    results = await asyncio.gather(*(_run(check) for check in checks.values()))
    outcome = dict(zip(checks, results, strict=True))
    ready = all(outcome[name] for name in required)
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    # A failing optional dependency (the Redis cache) degrades the service but does not take it out of rotation.
    state = "not ready" if not ready else "ready" if all(outcome.values()) else "degraded"
    return {"status": state, "checks": {k: "ok" if v else "failing" for k, v in outcome.items()}}


async def _run(check: Check) -> bool:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception:
        return False


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> str:
    """Prometheus text format: the search cache's counters, and the vectors not in HNSW yet (query roles; a
    growing figure means indexing does not keep up with writes, and searches scan more rows exactly)."""
    cache = getattr(request.app.state, "search_cache", None)
    values: dict[str, int] = cache.stats.as_metrics() if cache is not None else {}
    projections: Projections | None = getattr(request.app.state, "projections", None)
    if projections is not None:
        values["tributary_vectors_pending_index"] = sum(s.projection.pending for s in projections.all())
    return "".join(f"{name} {value}\n" for name, value in values.items())


@router.get("/asyncapi.json")
async def asyncapi(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.state.asyncapi
    return document


async def database_answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))
    return True


class _HealthServer(uvicorn.Server):
    # The worker owns SIGTERM and SIGINT (it stops its broker first); uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_health(readiness: dict[str, Check], host: str, port: int) -> AsyncIterator[None]:
    """`/healthz` and `/readyz` of a worker role on their own small HTTP server, while the body runs."""
    app = FastAPI(title="Tributary worker health", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    app.state.readiness, app.state.optional_readiness = readiness, {}
    server = _HealthServer(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(), name="health-server")
    while not server.started:
        if task.done():
            task.result()  # the port was taken: say why
            raise RuntimeError(f"the health server on {host}:{port} did not start")
        await asyncio.sleep(0.05)
    log.info("health and readiness on http://%s:%d", host, port)
    try:
        yield
    finally:
        server.should_exit = True
        await task
