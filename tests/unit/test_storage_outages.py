"""A dataset store that does not answer is a 503 (HTTP) or UNAVAILABLE (gRPC) with when to retry, never a 500."""

from __future__ import annotations

import grpc
import httpx
from fastapi import FastAPI

from entrypoints.grpc_api.errors import failure_status
from tributary import errors
from tributary.deeplake_lib import deeplake

OUTAGE = "[S3] Network connection error: action=GetObject curlCode: 7, Could not connect to server"


async def test_http_answers_503_with_retry_after() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/api/v1/past")
    async def past() -> None:
        raise deeplake.StorageNetworkConnectionError(OUTAGE)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/api/v1/past")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert "the dataset storage is unavailable" in answer.text


def test_grpc_answers_unavailable() -> None:
    status = failure_status(deeplake.StorageNetworkConnectionError(OUTAGE), {})
    assert status is not None
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert "the dataset storage is unavailable" in status.details
