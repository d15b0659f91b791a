from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.http_app import create_app
from tributary.auth.keys import new_key
from tributary.settings import Settings

T = TypeVar("T")
# A running deployment: clients of its command side and of its query side (one client in embedded mode).
Deployment = AbstractAsyncContextManager[tuple[httpx.AsyncClient, httpx.AsyncClient]]


# The operator key of every test deployment (tenant `default`, admin).
ADMIN_KEY = new_key().key


@contextlib.asynccontextmanager
async def serving(app: FastAPI, key: str | None = ADMIN_KEY) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in-process over ASGI, with `key` as the bearer credential."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tributary", headers=headers
        ) as client:
            yield client


@contextlib.asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Embedded mode as a `Deployment`: one app takes the writes and the reads."""
    async with serving(create_app(settings)) as client:
        yield client, client


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, every: float = 0.05
) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a `/metrics` answer (0 when absent: a counter not incremented yet)."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


async def scraped(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    return sample((await client.get("/metrics")).text, name, **labels)
