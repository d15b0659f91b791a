"""Open routes: liveness, readiness with dependency checks (tributary/health.py), metrics, and the AsyncAPI
document; and the small HTTP server that gives a worker role its `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response, status
from fastapi.responses import PlainTextResponse

from tributary.deps import ReadinessDep, ServicesDep, get_readiness
from tributary.health import Readiness
from tributary.metrics import exposition

log = logging.getLogger(__name__)

# Liveness and readiness: every app's, a worker's included.
probes = APIRouter()


@probes.get("/healthz")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@probes.get("/readyz", responses={503: {"description": "A required dependency is failing (same body)"}})
async def readiness(readiness: ReadinessDep, response: Response) -> dict[str, Any]:
    ready, body = await readiness.report()
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return body


# Every role's `/metrics`, a worker's included (tributary/metrics.py declares what it holds).
scraped = APIRouter()


@scraped.get("/metrics", response_class=PlainTextResponse)
async def metrics() -> Response:
    """Prometheus text format: the metrics tributary/metrics.py declares, of this process (or, under
    `--workers N`, of every process serving the port)."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)


router = APIRouter(tags=["operations"])
router.include_router(probes)
router.include_router(scraped)


@router.get("/asyncapi.json")
async def asyncapi(services: ServicesDep) -> dict[str, Any]:
    return services.asyncapi


class _HealthServer(uvicorn.Server):
    # The worker owns SIGTERM and SIGINT (it stops its broker first); uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_health(readiness: Readiness, host: str, port: int) -> AsyncIterator[None]:
    """`/healthz`, `/readyz` and `/metrics` of a worker role on their own small HTTP server, while the body
    runs."""
    app = FastAPI(title="Tributary worker health", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(probes, tags=["operations"])
    app.include_router(scraped, tags=["operations"])
    app.dependency_overrides[get_readiness] = lambda: readiness
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
