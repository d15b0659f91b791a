"""The local embedder's runtimes side by side: ONNX Runtime (embed-local) against sentence-transformers
(embed-st, when installed), each in a fresh process, through LocalEmbedder as the server calls it.

    python -m bench.embed [--docs 1000] [--runtimes onnx,sentence-transformers]

Texts are real: the summaries (short, ~10 tokens) and bodies (~60 tokens, some past the 256-token cut) of the
standard library's docstrings (tests/retrieval_corpus.py). Prints, per runtime: the first call (import and
load), texts/s for each kind of text in batches of 256 as an upsert would send them, texts/s one text at a time
as search queries come, the process's resident memory afterwards, and the cosine between the two runtimes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from events import LocalEmbedderConfig
from tests.retrieval_corpus import stdlib_corpus
from tributary.embedding.local import LocalEmbedder, missing
from tributary.settings import LocalRuntime

BATCH = 256
QUERIES = 200


async def measure(runtime: LocalRuntime, docs: int, out: Path) -> None:
    corpus = stdlib_corpus(docs)
    sets = {"short": [doc.title for doc in corpus], "long": [doc.body for doc in corpus]}
    embedder = LocalEmbedder(LocalEmbedderConfig(), runtime)
    started = time.perf_counter()
    await embedder.embed(["warm up"])
    result: dict[str, float] = {"first call s": time.perf_counter() - started}
    vectors = []
    for name, texts in sets.items():
        started = time.perf_counter()
        for start in range(0, len(texts), BATCH):
            vectors.append(await embedder.embed(texts[start : start + BATCH]))
        result[f"{name} texts/s"] = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in sets["short"][:QUERIES]:
        await embedder.embed([text])
    result["one query texts/s"] = QUERIES / (time.perf_counter() - started)
    result["resident MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out, np.vstack(vectors))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--runtimes", default="onnx,sentence-transformers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(measure(args.child, args.docs, args.out))
        return

    results: dict[str, dict[str, float]] = {}
    vectors = {}
    for runtime in args.runtimes.split(","):
        if reason := missing("all-minilm-l6-v2", runtime):
            print(f"{runtime}: skipped ({reason})")
            continue
        out = Path(f"/tmp/bench-embed-{runtime}.npy")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.embed",
                "--docs",
                str(args.docs),
                "--child",
                runtime,
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[runtime] = json.loads(child.stdout.strip().splitlines()[-1])
        vectors[runtime] = np.load(out)
        out.unlink()

    print(f"{args.docs} documents; batches of {BATCH}; {QUERIES} queries one at a time")
    columns = next(iter(results.values())).keys() if results else []
    print(f"{'runtime':<24}" + "".join(f"{column:>20}" for column in columns))
    for runtime, result in results.items():
        print(f"{runtime:<24}" + "".join(f"{value:>20.1f}" for value in result.values()))
    if len(vectors) == 2:
        first, second = vectors.values()
        cosines = np.sum(first * second, axis=1)
        print(f"cosine between the runtimes: min {cosines.min():.6f}, mean {cosines.mean():.6f}")
    if importlib.util.find_spec("sentence_transformers") is None:
        print("install the embed-st extra to compare with sentence-transformers")


if __name__ == "__main__":
    main()
