"""The local embedder with the real all-MiniLM-L6-v2 model (the embed-local extra)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest

from events import LocalEmbedderConfig
from tributary.embedding.local import LocalEmbedder

pytestmark = pytest.mark.local_model

T = TypeVar("T")


async def ticks_while(work: Awaitable[T]) -> tuple[T, int]:
    """Run `work` while another coroutine ticks; returns its result and how many times the ticker ran before
    the work was done. A model that held the event loop would leave the ticker no turn at all."""
    task = asyncio.ensure_future(work)
    ticks = 0
    while not task.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return await task, ticks


async def test_the_event_loop_keeps_running_while_the_model_loads_and_embeds() -> None:
    # First in this file, so that run alone it also covers loading the model.
    embedder = LocalEmbedder(LocalEmbedderConfig())
    _, while_loading = await ticks_while(embedder.embed(["warm up"]))
    vectors, while_embedding = await ticks_while(embedder.embed([f"sentence number {i}" for i in range(500)]))
    assert vectors.shape == (500, 384)
    # Loading and embedding 500 texts take far longer than a few turns of an idle loop: the loop kept serving
    # other work throughout (a loaded machine slows both alike, so this bound holds under load).
    assert while_loading >= 5 and while_embedding >= 5, (while_loading, while_embedding)


async def test_similar_texts_get_similar_normalized_embeddings() -> None:
    vectors = await LocalEmbedder(LocalEmbedderConfig()).embed(["a cat", "a kitten", "the stock market fell"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cat, kitten, stocks = vectors
    assert float(cat @ kitten) > 0.6 > 0.3 > float(cat @ stocks)
