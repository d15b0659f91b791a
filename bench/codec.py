"""Vectors on the wire: JSON float lists against packed float32 (base64), for one UpsertVectors command.

    python -m bench.codec [--rows 1000] [--dims 384] [--repeat 20]

Prints the encoded size and the time to encode and decode a whole command with each form.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from events import UpsertVectors, UpsertVectorsPayload, parse_command


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    vectors = np.random.default_rng(0).standard_normal((args.rows, args.dims)).astype(np.float32)
    ids = [f"id-{i}" for i in range(args.rows)]
    command = UpsertVectors(
        tenant="bench", dataset="bench", payload=UpsertVectorsPayload(ids=ids, vectors=vectors)
    )

    packed = command.model_dump_json()
    as_lists = command.model_dump(mode="json")
    as_lists["payload"]["vectors"] = vectors.tolist()
    listed = json.dumps(as_lists)

    rows = [
        (
            "packed float32",
            len(packed),
            timed(command.model_dump_json, args.repeat),
            timed(lambda: parse_command(packed), args.repeat),
        ),
        (
            "JSON float lists",
            len(listed),
            timed(
                lambda: json.dumps(
                    {**as_lists, "payload": {**as_lists["payload"], "vectors": vectors.tolist()}}
                ),
                args.repeat,
            ),
            timed(lambda: parse_command(listed), args.repeat),
        ),
    ]
    print(f"UpsertVectors of {args.rows} x {args.dims} float32, median of {args.repeat}")
    print(f"{'form':<18}{'bytes':>12}{'encode ms':>12}{'decode ms':>12}")
    for name, size, enc, dec in rows:
        print(f"{name:<18}{size:>12,}{enc:>12.2f}{dec:>12.2f}")


if __name__ == "__main__":
    main()
