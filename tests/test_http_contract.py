"""The HTTP answers keep the OpenAPI document's promises: one error shape with the security headers for every
error, strict request bodies, timestamps with their offset, `Allow` headers of the right route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest

from entrypoints.http_app import create_app
from tests.helpers import ADMIN_KEY, serving
from tributary.http_hygiene import SECURITY_HEADERS
from tributary.settings import Settings


def assert_error_shape(answer: httpx.Response, code: int) -> None:
    assert answer.status_code == code, answer.text
    assert answer.headers["content-type"] == "application/json"
    problems = answer.json()["detail"]
    assert isinstance(problems, list) and problems, answer.text
    for problem in problems:
        assert set(problem) == {"type", "loc", "msg"}, problem
        assert isinstance(problem["msg"], str) and isinstance(problem["loc"], list)
    for name, value in SECURITY_HEADERS:
        assert answer.headers.get(name.decode()) == value.decode(), (code, name)


async def test_every_error_has_one_json_shape_and_the_security_headers(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"max_body_bytes": 4096})
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client:
            assert_error_shape(await client.get("/boom"), 500)
            assert_error_shape(
                await client.get("/api/v1/datasets", headers={"Authorization": "Bearer x"}), 401
            )
            assert_error_shape(await client.get("/api/v1/datasets/nope"), 404)
            assert_error_shape(await client.get("/no/such/route"), 404)
            assert_error_shape(await client.delete("/api/v1/datasets"), 405)
            assert_error_shape(await client.post("/api/v1/datasets", json={"name": "x"}), 422)
            # A 422 a route raises itself has the list shape too, naming the field.
            session = await client.get("/api/v1/datasets/x/vectors/a?consistency=session")
            assert_error_shape(session, 422)
            assert session.json()["detail"][0]["loc"] == ["query", "token"]
            # Too large by its Content-Length, and too large while streamed without one.
            big = b'{"name": "' + b"x" * 8192 + b'"}'
            assert_error_shape(await client.post("/api/v1/datasets", content=big), 413)

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b" " * 1024

            assert_error_shape(await client.post("/api/v1/datasets", content=chunks()), 413)
            # A GET with a body it never reads is refused by its Content-Length all the same.
            assert_error_shape(await client.request("GET", "/api/v1/datasets", content=big), 413)


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/v1/datasets/docs/vectors", {"vectors": [{"vector": ["0.5", True, 1]}]}, "vector"),
        ("/api/v1/datasets/docs/search", {"vector": [1, 2, 3], "k": "10"}, "k"),
        ("/api/v1/datasets/docs/search", {"vector": [1, 2, 3], "k": 10.5}, "k"),
        ("/api/v1/datasets/docs/scroll", {"limit": True}, "limit"),
        ("/api/v1/datasets", {"name": "other", "dimensions": "3"}, "dimensions"),
        ("/api/v1/datasets/docs/vectors/get", {"ids": [1]}, "ids"),
        # The search breadth and the recall a dataset is tuned to are bounded, and a bad one is named.
        ("/api/v1/datasets/docs/search", {"vector": [1, 2, 3], "ef": 0}, "ef"),
        ("/api/v1/datasets/docs/search", {"vector": [1, 2, 3], "ef": 10_001}, "ef"),
        ("/api/v1/datasets/docs/search", {"vector": [1, 2, 3], "exact": "yes"}, "exact"),
        (
            "/api/v1/datasets",
            {"name": "o", "dimensions": 3, "index": {"target_recall": 1.5}},
            "target_recall",
        ),
        ("/api/v1/datasets", {"name": "o", "dimensions": 3, "index": {"m": 2}}, "m"),
        (
            "/api/v1/datasets",
            {"name": "o", "dimensions": 3, "index": {"ef_construction": 0}},
            "ef_construction",
        ),
    ],
)
async def test_coercions_the_client_did_not_ask_for_are_refused(
    embedded_settings: Settings, path: str, body: dict[str, object], loc: str
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3})
        assert created.status_code == 200, created.text
        answer = await client.post(path, json=body)
        assert_error_shape(answer, 422)
        assert any(loc in p["loc"] for p in answer.json()["detail"]), answer.text


async def test_json_numbers_are_numbers_whatever_their_spelling(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3.0})
        assert created.status_code == 200, created.text
        written = await client.post(
            "/api/v1/datasets/docs/vectors?wait=true", json={"vectors": [{"id": "a", "vector": [1, 0, 0.5]}]}
        )
        assert written.status_code == 200, written.text
        found = await client.post(
            "/api/v1/datasets/docs/search", json={"vector": [1, 0, 0], "k": 10.0, "score_threshold": 0}
        )
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["results"]] == ["a"]


async def test_timestamps_carry_their_utc_offset(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3})
        operation = (await client.get(f"/api/v1/operations/{created.json()['operation_id']}")).json()
        dataset = (await client.get("/api/v1/datasets/docs")).json()
        keys = (await client.get("/api/v1/admin/keys")).json()["keys"]
        stamps = [
            operation["created_at"],
            operation["updated_at"],
            dataset["created_at"],
            dataset["updated_at"],
            keys[0]["created_at"],
        ]
        for stamp in stamps:
            assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp


async def test_allow_names_the_methods_of_the_route_the_path_names(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        get = await client.options("/api/v1/datasets/docs/vectors/get")
        assert get.status_code == 405
        # Not PATCH (or GET) of /vectors/{vector_id}, whose pattern matches this path too.
        assert get.headers["allow"] == "POST"
        one = await client.options("/api/v1/datasets/docs/vectors/a")
        assert one.headers["allow"] == "GET, PATCH"
        datasets = await client.options("/api/v1/datasets")
        assert datasets.headers["allow"] == "GET, POST"


async def test_the_document_names_the_codes_routes_answer(embedded_settings: Settings) -> None:
    reads = ("/search", "/search/batch", "/vectors/get", "/scroll", "/count")
    checked = 0
    for path, operations in create_app(embedded_settings).openapi()["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if not path.startswith("/api/"):
                continue
            assert {"401", "403", "422", "429"} <= codes, (method, path, codes)
            if not path.startswith("/api/v1/datasets"):
                continue
            if path.endswith("/snapshot-schedule"):
                # A schedule is the dataset's configuration, kept in SQL, not a command: no operation, no 202.
                assert "404" in codes and codes & {"200", "204"}, (method, path, codes)
                continue
            if method in ("post", "patch", "delete") and not path.endswith(reads):
                # 200: ?wait=true saw it applied; 404, 409, 422: also a rejected operation's answer.
                assert {"200", "202", "404", "409", "413", "422"} <= codes, (method, path, codes)
                checked += 1
            elif "{" in path:
                assert "404" in codes, (method, path, codes)
    assert checked == 8
