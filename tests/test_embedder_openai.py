"""The OpenAI-compatible embedder over real HTTP, against a small server on a loopback port."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from pydantic import SecretStr

from events import LocalEmbedderConfig, OpenAIEmbedderConfig
from tests.embedding_server import EmbeddingsServer, vector_of
from tributary.embedding import Embedders, EmbeddingFailed
from tributary.embedding.openai import OpenAIEmbedder
from tributary.settings import Settings

KEY = "sk-test-never-shown"


def embedder(base_url: str, timeout: float = 30.0) -> OpenAIEmbedder:
    # Generous unless a test is about the timeout: a stalled machine must not turn an answer into a timeout.
    config = OpenAIEmbedderConfig(model="test-embed", base_url=base_url)
    return OpenAIEmbedder(config, 4, api_key=SecretStr(KEY), timeout=timeout, batch_size=2)


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
            OpenAIEmbedderConfig(model="m", base_url=server.base_url + "/", dimensions=8),
            8,
            api_key=None,
            timeout=2.0,
            batch_size=10,
        )
        vectors = await client.embed(["a", "b"])
        await client.aclose()
    assert vectors.shape == (2, 8)
    assert server.requests[0].body["dimensions"] == 8
    assert "authorization" not in server.requests[0].headers


@pytest.mark.parametrize(
    ("server", "timeout", "reason"),
    [
        (EmbeddingsServer(status=503), 30.0, "answered 503: the model is overloaded"),
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


async def test_an_endpoint_that_is_down_is_an_embedding_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = embedder(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(EmbeddingFailed, match=r"cannot reach the embedding endpoint 127\.0\.0\.1"):
        await client.embed(["a cat"])
    await client.aclose()


async def test_the_registry_shares_embedders_and_refuses_a_mismatched_width() -> None:
    embedders = Embedders(Settings(_env_file=None))  # type: ignore[call-arg]
    config = OpenAIEmbedderConfig(model="m", base_url="http://127.0.0.1:9/v1")
    same = OpenAIEmbedderConfig(model="m", base_url="http://127.0.0.1:9/v1")
    assert embedders.get(config, 4) is embedders.get(same, 4)
    assert embedders.get(config, 4) is not embedders.get(config, 8)
    assert embedders.get(LocalEmbedderConfig(), 384).dimensions == 384
    with pytest.raises(EmbeddingFailed, match="384-dimensional embeddings, the dataset has 3"):
        embedders.get(LocalEmbedderConfig(), 3)
    await embedders.aclose()
