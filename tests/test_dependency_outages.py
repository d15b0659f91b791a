"""A dependency that goes away gets a clear 503 with its reason and `Retry-After`, and the service recovers by
itself (the PostgreSQL and Kafka outages of the distributed roles are in tests/test_fault_postgres.py)."""

from __future__ import annotations

from tests.helpers import serving
from tributary.app import create_app
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
    assert "Redis" in answer.json()["detail"] and "rate limits" in answer.json()["detail"]
    assert int(answer.headers["Retry-After"]) >= 1
