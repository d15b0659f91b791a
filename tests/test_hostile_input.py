"""Inputs that answered 500 or poisoned the search cache: each is a 422 with a reason, and nothing else changes."""

from __future__ import annotations

import httpx
import pytest

from entrypoints.http_app import create_app
from tests.helpers import serving
from tributary.settings import Settings

SEARCH = "/api/v1/datasets/h/search"


async def _with_dataset(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/datasets?wait=true", json={"name": "h", "dimensions": 2})
    assert created.json()["status"] == "applied", created.text
    written = await client.post(
        "/api/v1/datasets/h/vectors?wait=true",
        json={"vectors": [{"id": "a", "vector": [1, 0]}, {"id": "b", "vector": [0, 1]}]},
    )
    assert written.json()["status"] == "applied", written.text


def _refused(answer: httpx.Response, *words: str) -> None:
    assert answer.status_code == 422, answer.text
    assert all(word in answer.text for word in words), answer.text


async def test_non_finite_numbers_are_refused_and_never_share_a_cache_key(
    embedded_settings: Settings,
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await _with_dataset(client)
        # A threshold no score reaches, cached under the key of "no threshold", emptied everyone's search.
        for threshold in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400"):
            body = '{"vector": [1, 0], "score_threshold": ' + threshold + "}"
            answer = await client.post(SEARCH, content=body, headers={"content-type": "application/json"})
            _refused(answer, "finite")
            assert answer.json()["detail"][0]["loc"][:2] == ["body", "score_threshold"]
        for body in (
            '{"vector": [1, 0], "mode": "hybrid", "text": "a", "fusion": "weighted", "alpha": NaN}',
            '{"vector": [1, 0], "filter": {"x": {"$gt": 1e400}}}',
            '{"vector": [1, 0], "k": 1e400}',
        ):
            answer = await client.post(SEARCH, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422, (body, answer.text)
        plain = await client.post(SEARCH, json={"vector": [1, 0]})
        assert [r["id"] for r in plain.json()["results"]] == ["a", "b"]
        for body, loc in (
            (
                '{"vectors": [{"id": "c", "vector": [1, 0], "metadata": {"x": 1e400}}]}',
                ["body", "vectors", 0, "metadata"],
            ),
            ('{"vectors": [{"id": "c", "vector": [1, NaN]}]}', ["body", "vectors", 0, "vector"]),
            (
                '{"vectors": [{"id": "c", "vector": [1, 0], "metadata": {"x": [NaN]}}]}',
                ["body", "vectors", 0],
            ),
        ):
            answer = await client.post(
                "/api/v1/datasets/h/vectors", content=body, headers={"content-type": "application/json"}
            )
            _refused(answer, "finite")
            assert answer.json()["detail"][0]["loc"][: len(loc)] == loc
        # A string that merely looks like a huge number is a string.
        text = await client.post(
            "/api/v1/datasets/h/vectors?wait=true",
            json={"vectors": [{"id": "e400", "vector": [1, 1], "text": "1e400 and " + "9" * 400}]},
        )
        assert text.json()["status"] == "applied", text.text


async def test_a_float32_overflow_in_a_vector_is_a_422_on_writes_and_queries(
    embedded_settings: Settings,
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await _with_dataset(client)
        write = await client.post("/api/v1/datasets/h/vectors", json={"vectors": [{"vector": [1e39, 0]}]})
        _refused(write, "float32")
        query = await client.post(SEARCH, json={"vector": [0, -1e39]})
        _refused(query, "float32")
        batch = await client.post(f"{SEARCH}/batch", json={"searches": [{"vector": [1e39, 0]}]})
        _refused(batch, "float32")
        counted = await client.post("/api/v1/datasets/h/count", json={})
        assert counted.json()["count"] == 2


@pytest.mark.parametrize("cursor", ["²", "1" * 5000, "-1", "1e3"])
async def test_a_cursor_the_api_never_gave_is_a_422(embedded_settings: Settings, cursor: str) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await _with_dataset(client)
        answer = await client.post("/api/v1/datasets/h/scroll", json={"cursor": cursor})
        _refused(answer, "cursor")


@pytest.mark.parametrize("token", ["²:1", "0:" + "1" * 5000, "0:999999", "3:1"])
async def test_a_malformed_session_token_is_a_422(embedded_settings: Settings, token: str) -> None:
    # A token beyond the end of the log (no write answered it) is a 422 at once, not a 504 after the read's
    # timeout.
    settings = embedded_settings.model_copy(update={"read_timeout_s": 20.0})
    async with serving(create_app(settings)) as client:
        await _with_dataset(client)
        answer = await client.post(
            SEARCH, params={"consistency": "session", "token": token}, json={"vector": [1, 0]}
        )
        _refused(answer, "token")


async def test_a_metadata_patch_of_an_over_long_id_is_a_422(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await _with_dataset(client)
        answer = await client.patch("/api/v1/datasets/h/vectors/" + "x" * 300, json={"metadata": {"a": 1}})
        _refused(answer, "vector_id")
        fine = await client.patch("/api/v1/datasets/h/vectors/a?wait=true", json={"metadata": {"a": 1}})
        assert fine.json()["status"] == "applied", fine.text
