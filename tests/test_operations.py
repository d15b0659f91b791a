"""Readiness checks against the real dependencies, and the published AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from entrypoints.asyncapi import asyncapi_document
from entrypoints.http_app import create_app
from tests.helpers import serving
from tributary.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


async def test_readiness_checks_database_kafka_and_redis(distributed_settings: Settings) -> None:
    async with serving(create_app(distributed_settings, "command-api")) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "kafka": "ok", "kafka_publish": "ok", "redis": "ok"},
        }


async def test_redis_gone_degrades_but_stays_ready(distributed_settings: Settings) -> None:
    settings = distributed_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with serving(create_app(settings, "query-api")) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "degraded",
            "checks": {"events": "ok", "database": "ok", "redis": "failing"},
        }
        assert (await client.get("/healthz")).status_code == 200


async def test_asyncapi_document_is_served_and_the_published_copy_is_current(
    embedded_settings: Settings,
) -> None:
    published = json.loads((DOCS / "asyncapi.json").read_text())
    assert published == asyncapi_document(Settings(_env_file=None))  # type: ignore[call-arg]
    async with serving(create_app(embedded_settings)) as client:
        served = (await client.get("/asyncapi.json")).json()
    channels = {"tributary.commands", "tributary.events", "tributary.dead-letters"}
    assert channels <= set(served["channels"])
    assert "UpsertVectors" in served["components"]["schemas"]
