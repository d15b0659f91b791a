"""DeepLake's automatic compaction against the ways a row can be overwritten, with DeepLake alone (no Tributary code).

    python -m bench.compaction_probe [--root /tmp/probe | s3://bucket/prefix] [--commits 140] [--dimensions 16]

For each way of overwriting rows (an embedding written in place row by row or by slice, a text column written in
place, a row deleted and appended again) it commits `--commits` times (500 fresh rows each, 50 random rows
overwritten every tenth commit), reads every row back and prints how many differ from what was written, with the
number of compactions (`<n>o<counter>` versions) DeepLake made. Measured with 4.7.4 (docs/architecture.md,
"Storage"): the in-place embedding writes lose about a third of the rows after the first compaction, each read
back as one float; the other two lose none. On S3 give the standard AWS variables (AWS_ENDPOINT_URL for S3Proxy).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import uuid
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

from tributary.deeplake_lib import deeplake

Vector = npt.NDArray[np.float32]
Expected = dict[str, tuple[Vector, str]]


def overwrite_embedding_rows(ds: Any, rows: list[int], ids: list[str], new: Vector, tag: str) -> None:
    for k, row in enumerate(rows):
        ds["embedding"][row] = new[k]


def overwrite_embedding_slices(ds: Any, rows: list[int], ids: list[str], new: Vector, tag: str) -> None:
    for k, row in enumerate(rows):
        ds["embedding"][row : row + 1] = new[k : k + 1]


def overwrite_text(ds: Any, rows: list[int], ids: list[str], new: Vector, tag: str) -> None:
    for row in rows:
        ds["metadata"][row] = tag


def delete_and_append(ds: Any, rows: list[int], ids: list[str], new: Vector, tag: str) -> None:
    for row in reversed(rows):
        ds.delete(row)
    ds.append({"id": [ids[row] for row in rows], "embedding": new, "metadata": [tag] * len(rows)})


STYLES: dict[str, tuple[Callable[[Any, list[int], list[str], Vector, str], None], bool, bool]] = {
    # name: (how, changes the vector, changes the text)
    "embedding in place, by row": (overwrite_embedding_rows, True, False),
    "embedding in place, by slice": (overwrite_embedding_slices, True, False),
    "text in place": (overwrite_text, False, True),
    "delete and append": (delete_and_append, True, True),
}


def probe(url: str, style: str, commits: int, dimensions: int) -> tuple[int, int, int]:
    how, vector_changes, text_changes = STYLES[style]
    ds: Any = deeplake.create(
        url,
        schema={
            "id": deeplake.types.Text(),
            "embedding": deeplake.types.Array("float32", shape=[dimensions]),
            "metadata": deeplake.types.Text(),
        },
    )
    ds.commit("schema")
    rng = np.random.default_rng(0)
    expected: Expected = {}
    for n in range(commits):
        ids = [f"{n}-{i}" for i in range(500)]
        vectors = rng.standard_normal((500, dimensions)).astype(np.float32)
        ds.append({"id": ids, "embedding": vectors, "metadata": [json.dumps({"n": n})] * 500})
        expected.update(
            {vid: (vector, json.dumps({"n": n})) for vid, vector in zip(ids, vectors, strict=True)}
        )
        if n % 10 == 9:
            rows = sorted(int(row) for row in rng.choice(len(ds), 50, replace=False))
            current = [str(vid) for vid in ds["id"][:]]
            new = rng.standard_normal((50, dimensions)).astype(np.float32)
            tag = json.dumps({"overwritten": n})
            how(ds, rows, current, new, tag)
            for k, row in enumerate(rows):
                vector, text = expected[current[row]]
                expected[current[row]] = (new[k] if vector_changes else vector, tag if text_changes else text)
        ds.commit(f"commit {n}")
    back: Any = deeplake.open_read_only(url)
    wrong = 0
    for vid, vector, text in zip(back["id"][:], back["embedding"][:], back["metadata"][:], strict=True):
        want_vector, want_text = expected[str(vid)]
        if (
            np.shape(vector) != want_vector.shape
            or not np.array_equal(vector, want_vector)
            or str(text) != want_text
        ):
            wrong += 1
    compacted = sum(1 for version in back.history if re.fullmatch(r"\d+o[0-9a-f]+", str(version.id)))
    return wrong, len(back), compacted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default=None, help="a folder or s3://bucket/prefix (default: a temp folder)"
    )
    parser.add_argument("--commits", type=int, default=140)
    parser.add_argument("--dimensions", type=int, default=16)
    args = parser.parse_args()
    root = (args.root or tempfile.mkdtemp(prefix="compaction-probe-")).rstrip("/")
    print(f"DeepLake {metadata.version('deeplake')}, {args.commits} commits, under {root}")
    print("| overwrite | rows read back wrong | rows | compactions |")
    print("|---|---|---|---|")
    for style in STYLES:
        wrong, rows, compacted = probe(f"{root}/{uuid.uuid4().hex}", style, args.commits, args.dimensions)
        print(f"| {style} | {wrong} | {rows} | {compacted} |", flush=True)


if __name__ == "__main__":
    main()
