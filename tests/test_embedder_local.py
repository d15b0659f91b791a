"""The local embedder with the real all-MiniLM-L6-v2 model (the embed-local extra)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
import pytest

from events import LocalEmbedderConfig
from tributary.embedding.local import LocalEmbedder

pytestmark = pytest.mark.local_model

T = TypeVar("T")


async def gaps_while(work: Awaitable[T]) -> tuple[T, float, float]:
    """Run `work` while a coroutine ticks every 10 ms; returns its result, the longest time the event loop
    went without running the ticker, and how long the work took."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.monotonic()
    result = await work
    elapsed = time.monotonic() - started
    done.set()
    await ticking
    return result, max(gaps), elapsed


async def test_the_event_loop_keeps_running_while_the_model_loads_and_embeds() -> None:
    # First in this file, so that run alone it also covers loading the model.
    embedder = LocalEmbedder(LocalEmbedderConfig())
    _, load_gap, load_time = await gaps_while(embedder.embed(["warm up"]))
    vectors, gap, elapsed = await gaps_while(embedder.embed([f"sentence number {i}" for i in range(500)]))
    print(
        f"loop gaps: longest {load_gap:.3f}s in {load_time:.1f}s of loading, {gap:.3f}s in {elapsed:.1f}s of embedding"
    )
    assert vectors.shape == (500, 384)
    # Importing torch's native libraries holds the GIL for a moment (once per process); that is all.
    assert load_gap < max(1.0, load_time / 4)
    assert gap < 0.25


async def test_similar_texts_get_similar_normalized_embeddings() -> None:
    vectors = await LocalEmbedder(LocalEmbedderConfig()).embed(["a cat", "a kitten", "the stock market fell"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cat, kitten, stocks = vectors
    assert float(cat @ kitten) > 0.6 > 0.3 > float(cat @ stocks)
