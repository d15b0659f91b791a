"""What a write answers: `?wait=true` answers the status code of the outcome (a rejection's too), and a retry
with the same Idempotency-Key answers what the first attempt did, before and after the outcome and a restart."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, update

from entrypoints.http_app import create_app
from tests.helpers import eventually, serving
from tributary.db.models import DatasetRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings


async def change_catalog(settings: Settings, statement: Any) -> None:
    """The catalog lagging behind storage (what a race between two writers looks like to the API)."""
    engine = engine_for(settings)
    async with make_sessionmaker(engine).begin() as session:
        await session.execute(statement)
    await engine.dispose()


@pytest.mark.parametrize(
    ("lag", "method", "path", "body", "code", "cause"),
    [
        (None, "PATCH", "/api/v1/datasets/docs/vectors/nope", {"metadata": {"a": 1}}, 404, "not_found"),
        (
            delete(DatasetRow).where(DatasetRow.name == "docs"),
            "POST",
            "/api/v1/datasets",
            {"name": "docs", "dimensions": 4},
            409,
            "conflict",
        ),
        (
            update(DatasetRow).values(dimensions=4),
            "POST",
            "/api/v1/datasets/docs/vectors",
            {"vectors": [{"vector": [1, 2, 3, 4]}]},
            422,
            "invalid",
        ),
    ],
)
async def test_a_rejected_operation_answers_the_code_of_its_cause(
    embedded_settings: Settings,
    lag: Any,
    method: str,
    path: str,
    body: dict[str, Any],
    code: int,
    cause: str,
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3})
        assert created.status_code == 200, created.text
        if lag is not None:
            await change_catalog(embedded_settings, lag)
        answer = await client.request(method, f"{path}?wait=true", json=body)
        assert answer.status_code == code, answer.text
        # The same body as any write's answer: the operation, rejected, and why.
        rejected = answer.json()
        assert rejected["status"] == "rejected" and rejected["rejection"] == cause, rejected
        assert rejected["reason"] and rejected["operation_id"] and rejected["consistency_token"]
        operation = await client.get(f"/api/v1/operations/{rejected['operation_id']}")
        assert operation.json()["rejection"] == cause


async def test_a_retry_answers_what_the_first_attempt_did_across_a_restart(
    embedded_settings: Settings,
) -> None:
    key = {"Idempotency-Key": "batch-1"}
    body = {"vectors": [{"vector": [1, 2, 3]}]}
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3})
        first = await client.post("/api/v1/datasets/docs/vectors", json=body, headers=key)
        assert first.status_code == 202 and first.json()["status"] == "accepted", first.text
        operation = f"/api/v1/operations/{first.json()['operation_id']}"

        async def applied() -> bool | None:
            return (await client.get(operation)).json()["status"] == "applied" or None

        await eventually(applied)
        retry = await client.post("/api/v1/datasets/docs/vectors", json=body, headers=key)
        assert (retry.status_code, retry.json()) == (202, first.json())
    async with serving(create_app(embedded_settings)) as client:
        retry = await client.post("/api/v1/datasets/docs/vectors", json=body, headers=key)
        assert (retry.status_code, retry.json()) == (202, first.json())
        # Asked to wait, a retry waits for the outcome, as the first attempt would have.
        waited = await client.post("/api/v1/datasets/docs/vectors?wait=true", json=body, headers=key)
        assert waited.status_code == 200 and waited.json() == {**first.json(), "status": "applied"}
