"""The OpenAI-compatible embedder over real HTTP, against a small server on a loopback port."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from events import LocalEmbedderConfig, OpenAIEmbedderConfig
from tests.embedding_server import EmbeddingsServer, vector_of
from tributary.embedding import Embedders, EmbeddingFailed
from tributary.embedding.openai import OpenAIEmbedder
from tributary.settings import EmbeddingEndpoint, Settings

KEY = "sk-test-never-shown"


def endpoint(url: str, *, allow_private: bool = True, key: str = KEY) -> EmbeddingEndpoint:
    return EmbeddingEndpoint(url=url, api_key=SecretStr(key), allow_private=allow_private)


def embedder(base_url: str, timeout: float = 30.0, *, allow_private: bool = True) -> OpenAIEmbedder:
    # Generous unless a test is about the timeout: a stalled machine must not turn an answer into a timeout.
    config = OpenAIEmbedderConfig(model="test-embed", endpoint="test")
    return OpenAIEmbedder(
        config,
        4,
        name="test",
        endpoint=endpoint(base_url, allow_private=allow_private),
        timeout=timeout,
        batch_size=2,
    )


async def test_texts_go_in_batches_and_come_back_in_order() -> None:
    async with EmbeddingsServer(width=4) as server:
        client = embedder(server.base_url)
        texts = ["one", "two", "three", "four", "five"]
        vectors = await client.embed(texts)
        await client.aclose()
    assert vectors.dtype == np.float32 and vectors.shape == (5, 4)
    np.testing.assert_array_equal(vectors, np.stack([vector_of(t, 4) for t in texts]))
    assert [seen.body["input"] for seen in server.requests] == [["one", "two"], ["three", "four"], ["five"]]
    assert {seen.body["model"] for seen in server.requests} == {"test-embed"}
    assert all("dimensions" not in seen.body for seen in server.requests)
    assert {seen.headers["authorization"] for seen in server.requests} == {f"Bearer {KEY}"}


async def test_configured_dimensions_are_asked_for() -> None:
    async with EmbeddingsServer(width=16) as server:
        client = OpenAIEmbedder(
            OpenAIEmbedderConfig(model="m", endpoint="e", dimensions=8),
            8,
            name="e",
            endpoint=endpoint(server.base_url + "/", key="other"),
            timeout=2.0,
            batch_size=10,
        )
        vectors = await client.embed(["a", "b"])
        await client.aclose()
    assert vectors.shape == (2, 8)
    assert server.requests[0].body["dimensions"] == 8
    assert server.requests[0].headers["authorization"] == "Bearer other"


@pytest.mark.parametrize(
    ("server", "timeout", "reason"),
    [
        (EmbeddingsServer(status=503), 30.0, "'test' answered 503"),
        (EmbeddingsServer(status=401), 30.0, "answered 401"),
        (EmbeddingsServer(delay_s=1.5), 1.0, "did not answer within 1.0s"),
        (EmbeddingsServer(width=5), 30.0, "embeddings of [5] dimensions, the dataset has 4"),
    ],
)
async def test_failures_say_why_and_never_show_the_key(
    server: EmbeddingsServer, timeout: float, reason: str
) -> None:
    async with server:
        client = embedder(server.base_url, timeout)
        with pytest.raises(EmbeddingFailed) as failure:
            await client.embed(["a cat"])
        await client.aclose()
    assert reason in str(failure.value)
    assert KEY not in str(failure.value) and KEY not in repr(client)
    # What the endpoint says is logged for the operator, never passed on to the client.
    assert "overloaded" not in str(failure.value)


async def test_an_error_body_is_logged_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    async with EmbeddingsServer(status=500) as server:
        client = embedder(server.base_url)
        with caplog.at_level(logging.WARNING), pytest.raises(EmbeddingFailed) as failure:
            await client.embed(["a cat"])
        await client.aclose()
    assert str(failure.value) == "the embedding endpoint 'test' answered 500"
    assert "the model is overloaded" in caplog.text


async def test_an_internal_address_is_refused_unless_the_operator_allowed_it() -> None:
    async with EmbeddingsServer(width=4) as server:
        for url in (server.base_url, f"http://localhost:{server.port}/v1"):
            client = embedder(url, allow_private=False)
            with pytest.raises(EmbeddingFailed, match="loopback, link-local or private address"):
                await client.embed(["a cat"])
            await client.aclose()
        assert server.requests == []
        allowed = embedder(server.base_url, allow_private=True)
        assert (await allowed.embed(["a cat"])).shape == (1, 4)
        await allowed.aclose()


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://10.0.0.8/v1", "http://[::1]:80/v1", "http://192.168.1.1"]
)
async def test_internal_addresses_are_refused_before_any_connection(url: str) -> None:
    client = embedder(url, allow_private=False)
    with pytest.raises(EmbeddingFailed, match="private address"):
        await client.embed(["a cat"])
    await client.aclose()


@pytest.mark.parametrize(
    "url", ["https://h/v1?x=", "https://h/v1#", "https://user:pw@h/v1", "ftp://h/v1", "https://h /v1"]
)
def test_an_endpoint_url_picks_no_query_fragment_or_user(url: str) -> None:
    with pytest.raises(ValidationError):
        EmbeddingEndpoint(url=url, api_key=SecretStr("k"))


async def test_an_endpoint_that_is_down_is_an_embedding_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = embedder(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(EmbeddingFailed, match=r"cannot reach the embedding endpoint 'test'"):
        await client.embed(["a cat"])
    await client.aclose()


async def test_the_registry_shares_embedders_and_refuses_a_mismatched_width() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, embedding_endpoints={"e": endpoint("http://127.0.0.1:9/v1")}
    )
    embedders = Embedders(settings)
    config = OpenAIEmbedderConfig(model="m", endpoint="e")
    same = OpenAIEmbedderConfig(model="m", endpoint="e")
    assert embedders.get(config, 4) is embedders.get(same, 4)
    assert embedders.get(config, 4) is not embedders.get(config, 8)
    assert embedders.get(LocalEmbedderConfig(), 384).dimensions == 384
    with pytest.raises(EmbeddingFailed, match="384-dimensional embeddings, the dataset has 3"):
        embedders.get(LocalEmbedderConfig(), 3)
    await embedders.aclose()


async def test_only_configured_endpoints_are_used_and_an_old_dataset_url_must_be_one_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "TRIBUTARY_EMBEDDING_ENDPOINTS",
        '{"e": {"url": "http://127.0.0.1:9/v1/", "api_key": "sk-x", "allow_private": true}}',
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.embedding_endpoints["e"].api_key.get_secret_value() == "sk-x"
    assert "sk-x" not in repr(settings)
    embedders = Embedders(settings)
    assert embedders.unavailable(OpenAIEmbedderConfig(model="m", endpoint="e")) is None
    assert "no embedding endpoint 'other'" in str(
        embedders.unavailable(OpenAIEmbedderConfig(model="m", endpoint="other"))
    )
    # A dataset created before named endpoints kept its URL: it embeds through the endpoint of that URL only.
    legacy = OpenAIEmbedderConfig(model="m", base_url="http://127.0.0.1:9/v1")
    assert embedders.unavailable(legacy) is None
    stray = OpenAIEmbedderConfig(model="m", base_url="http://127.0.0.1:8080/api/v1/admin/keys#")
    with pytest.raises(EmbeddingFailed, match="no configured endpoint has that URL"):
        embedders.get(stray, 4)
    await embedders.aclose()
