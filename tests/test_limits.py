"""Limits on every route: requests without a valid credential and key management are rate-limited, a flood of
401s is audited as a count, a `session` token beyond the log is refused at once, and a huge filter is refused
without holding the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select

from entrypoints.http_app import create_app
from tests.helpers import ADMIN_KEY, serving
from tributary import json_route
from tributary.db.models import AuditRow
from tributary.settings import Settings

BAD_KEY = "trb_aaaaaaaa_" + "x" * 43


@pytest.fixture
def limited(embedded_settings: Settings, redis_url: str, run_id: str) -> Settings:
    """Embedded mode with the rate limiter on (Redis), its buckets apart from every other test's."""
    return embedded_settings.model_copy(
        update={
            "redis_url": redis_url,
            "topic_prefix": run_id,
            "rate_limit_unauthenticated_per_s": 0.001,
            "rate_limit_unauthenticated_burst": 5,
            "rate_limit_key_writes_per_s": 0.001,
            "rate_limit_key_writes_burst": 3,
        }
    )


async def _audit(app_settings: Settings) -> list[AuditRow]:
    app = create_app(app_settings)
    async with serving(app), app.state.services.sessions() as session:
        return list((await session.scalars(select(AuditRow))).all())


async def test_a_flood_of_bad_credentials_is_limited_and_audited_as_a_count(limited: Settings) -> None:
    async with serving(create_app(limited), key=BAD_KEY) as client:
        answers = [await client.get("/api/v1/datasets") for _ in range(20)]
        answers += [await client.post("/api/v1/datasets/x/search", json={}) for _ in range(10)]
        # An authenticated refusal is still recorded one by one, with who it was.
        reader = await client.post(
            "/api/v1/admin/keys",
            json={"tenant": "default", "roles": ["reader"]},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        refused = await client.post(
            "/api/v1/datasets",
            json={"name": "x", "dimensions": 2},
            headers={"Authorization": f"Bearer {reader.json()['key']}"},
        )
        assert refused.status_code == 403
    codes = [answer.status_code for answer in answers]
    assert codes == [401] * 5 + [429] * 25, codes
    assert int(answers[-1].headers["Retry-After"]) >= 1
    rows = await _audit(limited.model_copy(update={"redis_url": None}))
    anonymous = {
        (row.action, row.target, row.outcome): row.count for row in rows if row.subject == "anonymous"
    }
    assert anonymous == {
        ("GET", "/api/v1/datasets", 401): 5,
        ("GET", "/api/v1/datasets", 429): 15,
        ("POST", "/api/v1/datasets/x/search", 429): 10,
    }
    assert [
        (row.outcome, row.count) for row in rows if row.action == "POST" and row.target == "/api/v1/datasets"
    ] == [(403, 1)]


async def test_key_management_is_rate_limited(limited: Settings) -> None:
    async with serving(create_app(limited)) as client:
        codes = [(await client.get("/api/v1/admin/keys")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


async def test_a_session_token_beyond_the_log_is_refused_at_once(distributed_settings: Settings) -> None:
    # Waiting for such a token would end in a 504 after read_timeout_s; it is a 422 instead.
    settings = distributed_settings.model_copy(update={"read_timeout_s": 20.0})
    async with serving(create_app(settings, "query-api")) as reads:
        for token in ("0:999999", "99:0"):
            answer = await reads.post(
                "/api/v1/datasets/none/count",
                params={"consistency": "session", "token": token},
                json={},
            )
            assert answer.status_code == 422, answer.text
            assert "beyond the end of the command log" in answer.text


async def test_a_huge_filter_is_refused_and_parsed_off_the_event_loop(
    embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[bool] = []
    parse = json_route._parse

    def recording(body: bytes) -> object:
        threads.append(threading.current_thread() is threading.main_thread())
        return parse(body)

    monkeypatch.setattr(json_route, "_parse", recording)
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "f", "dimensions": 2})
        assert created.json()["status"] == "applied"
        huge = {"vector": [1, 0], "filter": {"text": {"$match": "word " * (6 * 1024 * 1024)}}}
        answer, health = await asyncio.gather(
            client.post("/api/v1/datasets/f/search", json=huge), client.get("/healthz")
        )
        assert answer.status_code == 422, answer.text[:500]
        assert "at most 65,536 characters" in answer.text and "word word" not in answer.text
        assert health.status_code == 200
        many = {"vector": [1, 0], "filter": {"$or": [{"a": i} for i in range(200_000)]}}
        answer = await client.post("/api/v1/datasets/f/search", json=many)
        assert answer.status_code == 422 and "items" in answer.text
    # The small create was parsed on the loop, the large searches on worker threads.
    assert threads[0] is True and threads[-2:] == [False, False]
