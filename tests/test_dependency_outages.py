"""A dependency that goes away gets a clear 503 with its reason and `Retry-After`, and the service recovers by
itself (the PostgreSQL and Kafka outages of the distributed roles are in tests/test_fault_postgres.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import httpx
import pytest

from entrypoints.http_app import create_app
from query_api.follower import EventFollower
from tests.helpers import eventually, serving
from tests.kafka_tools import publish_rejection
from tributary.settings import Settings


async def test_rate_limiting_that_fails_closed_answers_503_with_the_reason(
    embedded_settings: Settings,
) -> None:
    settings = embedded_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "rate_limit_fail_open": False}
    )
    async with serving(create_app(settings)) as client:
        answer = await client.get("/api/v1/datasets")
    # It was a 429 "rate limit exceeded": the client was not too fast, Redis was away.
    assert answer.status_code == 503, answer.text
    message = answer.json()["detail"][0]["msg"]
    assert "Redis" in message and "rate limits" in message
    assert int(answer.headers["Retry-After"]) >= 1


async def until_ready_is(client: httpx.AsyncClient, code: int) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        answer = await client.get("/readyz")
        return answer.json() if answer.status_code == code else None  # type: ignore[no-any-return]

    return await eventually(probe, timeout=60)


T = TypeVar("T")


class Breakable(Generic[T]):
    """Stands in for a method of a background task: raises while `broken`, else does what the method did."""

    def __init__(self, method: Callable[..., Awaitable[T]]) -> None:
        self._method = method
        self.broken = True
        self.calls = 0

    async def __call__(self, *args: object, **kwargs: object) -> T:
        self.calls += 1
        if self.broken:
            raise RuntimeError("injected crash")
        return await self._method(*args, **kwargs)


async def test_a_crashed_embedded_bus_task_flips_readiness_and_is_restarted(
    embedded_settings: Settings,
) -> None:
    app = create_app(embedded_settings)
    async with serving(app) as client:
        await until_ready_is(client, 200)
        bus = app.state.services.publisher
        crash = Breakable(bus._apply_pending)
        bus._apply_pending = crash
        created = await client.post("/api/v1/datasets", json={"name": "kept", "dimensions": 2})
        assert created.status_code == 202, created.text
        answer = await until_ready_is(client, 503)
        assert answer["checks"] == {"database": "ok", "bus": "failing"}
        crash.broken = False
        await until_ready_is(client, 200)
        # The command accepted while the task was down is applied by the restarted one.
        operation = created.json()["operation_id"]

        async def applied() -> bool | None:
            status = (await client.get(f"/api/v1/operations/{operation}")).json()["status"]
            return True if status == "applied" else None

        await eventually(applied)


async def test_a_crashed_event_follower_flips_readiness_and_is_restarted(
    distributed_settings: Settings,
) -> None:
    app = create_app(distributed_settings, "query-api")
    async with serving(app) as client:
        await until_ready_is(client, 200)
        follower = app.state.services.barrier
        crash = Breakable(follower._consumer.getmany)
        follower._consumer.getmany = crash
        answer = await until_ready_is(client, 503)
        assert answer["checks"]["events"] == "failing"  # type: ignore[index]
        crash.broken = False
        await until_ready_is(client, 200)
        assert crash.calls > 1


async def test_a_query_api_is_not_ready_until_it_caught_up_with_the_event_log(
    distributed_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = asyncio.Event()  # never set: the follower reads nothing
    monkeypatch.setattr(EventFollower, "_run", lambda self: stalled.wait())
    app = create_app(distributed_settings, "query-api")
    async with serving(app) as client:
        # Written after the replica noted where the log ends, and not read: it is behind.
        await publish_rejection(distributed_settings, "nowhere", "behind")
        answer = await client.get("/readyz")
        assert answer.status_code == 503, answer.text
        assert answer.json()["checks"]["events"] == "failing"
