"""Records sent with text and no vector, embedded by the dataset's embedder in the command API (embedded mode,
DeepLake on a temp dir): the local model for real, and an OpenAI-compatible endpoint over real HTTP."""

from __future__ import annotations

import socket

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from entrypoints.http_app import create_app
from events import LocalEmbedderConfig
from tests.embedding_server import EmbeddingsServer, vector_of
from tests.helpers import serving
from tributary.db.models import BusCommandRow, OperationRow
from tributary.deeplake_lib import deeplake
from tributary.embedding import local
from tributary.embedding.local import LocalEmbedder
from tributary.settings import EmbeddingEndpoint, Settings

VECTORS = "/api/v1/datasets/docs/vectors"


def stored(settings: Settings) -> dict[str, tuple[npt.NDArray[np.float32], str]]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/docs")
    return {
        str(ds["id"][i]): (np.asarray(ds["embedding"][i], dtype=np.float32), str(ds["text"][i]))
        for i in range(len(ds))
    }


def with_endpoint(settings: Settings, url: str, key: str = "sk-test") -> Settings:
    """`settings` with the embedding endpoint "test" at `url` (a loopback test server: allowed explicitly)."""
    endpoint = EmbeddingEndpoint(url=url, api_key=SecretStr(key), allow_private=True)
    return settings.model_copy(update={"embedding_endpoints": {"test": endpoint}})


async def create(client: httpx.AsyncClient, dimensions: int, embedder: dict[str, object] | None) -> None:
    answer = await client.post(
        "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": dimensions, "embedder": embedder}
    )
    assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.local_model
async def test_text_records_are_embedded_by_the_local_model(embedded_settings: Settings) -> None:
    given = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    async with serving(create_app(embedded_settings)) as client:
        await create(client, 384, {"kind": "local", "model": "all-minilm-l6-v2"})
        catalog = (await client.get("/api/v1/datasets/docs")).json()
        assert catalog["embedder"] == {"kind": "local", "model": "all-minilm-l6-v2"}
        records = [
            {"id": "cat", "text": "a cat"},
            {"id": "kitten", "text": "a kitten"},
            {"id": "given", "vector": given.tolist(), "text": "kept as sent"},
            {"id": "stocks", "text": "the stock market"},
        ]
        answer = await client.post(f"{VECTORS}?wait=true", json={"vectors": records})
        assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text

    rows = stored(embedded_settings)
    assert rows["given"][1] == "kept as sent"
    np.testing.assert_array_equal(rows["given"][0], given)
    cat, kitten, stocks = (rows[name][0] for name in ("cat", "kitten", "stocks"))
    assert float(cat @ kitten) > float(cat @ stocks)
    model = await LocalEmbedder(LocalEmbedderConfig()).embed(["a cat", "a kitten", "the stock market"])
    np.testing.assert_allclose(np.stack([cat, kitten, stocks]), model, atol=1e-5)
    assert rows["cat"][1] == "a cat"


async def test_text_records_are_embedded_by_an_openai_compatible_endpoint(
    embedded_settings: Settings,
) -> None:
    async with EmbeddingsServer(width=4) as server:
        settings = with_endpoint(embedded_settings, server.base_url)
        async with serving(create_app(settings)) as client:
            await create(client, 4, {"kind": "openai", "model": "test-embed", "endpoint": "test"})
            records = [
                {"id": "a", "text": "first"},
                {"id": "b", "vector": [1, 0, 0, 0]},
                {"id": "c", "text": "x"},
            ]
            answer = await client.post(f"{VECTORS}?wait=true", json={"vectors": records})
            assert answer.json()["status"] == "applied", answer.text
    # One call for the whole request, with the key from the settings.
    assert [seen.body["input"] for seen in server.requests] == [["first", "x"]]
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
    rows = stored(embedded_settings)
    np.testing.assert_array_equal(rows["a"][0], vector_of("first", 4))
    np.testing.assert_array_equal(rows["b"][0], [1, 0, 0, 0])
    np.testing.assert_array_equal(rows["c"][0], vector_of("x", 4))


async def test_an_embedder_that_is_down_is_a_503_and_nothing_is_published(
    embedded_settings: Settings,
) -> None:
    app = create_app(with_endpoint(embedded_settings, f"http://127.0.0.1:{closed_port()}/v1"))
    async with serving(app) as client:
        await create(client, 4, {"kind": "openai", "model": "m", "endpoint": "test"})
        answer = await client.post(f"{VECTORS}?wait=true", json={"vectors": [{"text": "hello"}]})
        assert answer.status_code == 503, answer.text
        assert "embedding failed: cannot reach the embedding endpoint" in answer.json()["detail"][0]["msg"]
        async with app.state.services.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(BusCommandRow)) == 1  # the create
            assert await session.scalar(select(func.count()).select_from(OperationRow)) == 1


@pytest.mark.parametrize(
    ("dimensions", "embedder", "message"),
    [
        (3, {"kind": "local"}, "384-dimensional embeddings, the dataset has 3 dimensions"),
        (4, {"kind": "openai", "model": "m", "endpoint": "test", "dimensions": 8}, "8-dimensional"),
        (
            4,
            {"kind": "openai", "model": "m", "endpoint": "nope"},
            "no embedding endpoint 'nope' is configured",
        ),
        # A URL of the client's choosing: the server would call it with the deployment's key.
        (
            4,
            {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:8080/api/v1/admin/keys#"},
            "endpoint",
        ),
    ],
)
async def test_an_embedder_this_server_cannot_run_is_refused_at_creation(
    embedded_settings: Settings, dimensions: int, embedder: dict[str, object], message: str
) -> None:
    async with serving(create_app(with_endpoint(embedded_settings, "https://example.test/v1"))) as client:
        answer = await client.post(
            "/api/v1/datasets", json={"name": "docs", "dimensions": dimensions, "embedder": embedder}
        )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "embedder"] and message in problem["msg"]


@pytest.mark.parametrize(
    ("embedder", "record", "loc", "message"),
    [
        (None, {"text": "a cat"}, ["body", "vectors", 1, "vector"], "this dataset has no embedder"),
        ("openai", {"metadata": {}}, ["body", "vectors", 1, "vector"], "give a vector, or a text"),
        ("openai", {"text": "  "}, ["body", "vectors", 1, "text"], "nothing to embed"),
    ],
)
async def test_records_without_a_vector_need_a_text_and_an_embedder(
    embedded_settings: Settings,
    embedder: str | None,
    record: dict[str, object],
    loc: list[object],
    message: str,
) -> None:
    config = {"kind": "openai", "model": "m", "endpoint": "test"} if embedder else None
    async with serving(create_app(with_endpoint(embedded_settings, "http://127.0.0.1:9/v1"))) as client:
        await create(client, 4, config)
        answer = await client.post(VECTORS, json={"vectors": [{"vector": [0, 0, 0, 1]}, record]})
    assert answer.status_code == 422, answer.text
    assert [(p["loc"], message in p["msg"]) for p in answer.json()["detail"]] == [(loc, True)]


async def test_a_local_embedder_without_the_extra_is_refused_at_creation(
    embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a server installed without embed-local: the model's package cannot be found.
    monkeypatch.setitem(local.RUNTIME_MODULES, "onnx", ("tributary_no_such_module",))
    async with serving(create_app(embedded_settings)) as client:
        answer = await client.post(
            "/api/v1/datasets", json={"name": "docs", "dimensions": 384, "embedder": {"kind": "local"}}
        )
        assert answer.status_code == 422, answer.text
        assert "pip install -e '.[embed-local]'" in answer.text
        assert (await client.get("/api/v1/datasets/docs")).status_code == 404
