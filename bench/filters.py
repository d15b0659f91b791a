"""Filter evaluation at scale: the columnar `mask` for search, and the row evaluator for deletes by filter.

    python -m bench.filters [--rows 100000] [--repeat 30]

Synthetic metadata: a category (20 values), a price, a year, a draft flag, 1-4 tags out of 50, a title of 4 words
out of 1,000, and a nested `meta.lang` on half the rows. Prints the time to load the rows into MetadataColumns and
to replace one row, then, for each filter, its selectivity, the time of its first `mask` (which builds the caches
of a string column: the array of its distinct strings, the word index) and the median time of `mask` afterwards;
last, the row evaluator (`matches`) over the same rows.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from functools import partial
from typing import Any

from bench.codec import timed
from events.filters import FilterNode, parse_filter
from tributary.filtering import matches
from tributary.metadata_columns import MetadataColumns, mask

FILTERS: list[dict[str, Any]] = [
    {"category": "c7"},
    {"year": 2020},
    {"price": {"$gte": 10, "$lt": 20}},
    {"draft": False},
    {"category": {"$ne": "c7"}},
    {"category": {"$in": ["c1", "c2", "c3"]}},
    {"category": {"$gt": "c5"}},
    {"tags": "t3"},
    {"tags": {"$contains": "t3"}},
    {"title": {"$match": "W12"}},
    {"title": {"$lt": "w1 "}},
    {"meta.lang": {"$exists": True}},
    {"category": "c7", "price": {"$lt": 50}, "$or": [{"draft": False}, {"tags": "t1"}]},
]


def metadata(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {
        "category": f"c{rng.randrange(20)}",
        "price": round(rng.uniform(0, 100), 2),
        "year": rng.randrange(2000, 2025),
        "draft": rng.random() < 0.3,
        "tags": [f"t{rng.randrange(50)}" for _ in range(rng.randrange(1, 5))],
        "title": " ".join(f"w{rng.randrange(1000)}" for _ in range(4)),
    }
    if rng.random() < 0.5:
        row["meta"] = {"lang": rng.choice(["en", "de", "fr"])}
    return row


def evaluate_rows(node: FilterNode, rows: list[dict[str, Any]]) -> list[bool]:
    return [matches(node, row) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    rng = random.Random(0)
    rows = [metadata(rng) for _ in range(args.rows)]
    columns = MetadataColumns()
    start = time.perf_counter()
    columns.append(rows)
    load_s = time.perf_counter() - start
    replacements = iter([(rng.randrange(args.rows), metadata(rng)) for _ in range(1000)])
    replace_us = timed(lambda: columns.replace(*next(replacements)), 1000) * 1000
    print(f"{args.rows:,} rows: loaded in {load_s:.2f} s, one row replaced in {replace_us:.0f} us (median)")

    print(f"{'filter':<88}{'match %':>8}{'first ms':>9}{'mask ms':>9}")
    for raw in FILTERS:
        node = parse_filter(raw)
        start = time.perf_counter()
        hits = int(mask(node, columns).sum())
        first_ms = (time.perf_counter() - start) * 1000
        ms = timed(partial(mask, node, columns), args.repeat)
        print(f"{json.dumps(raw):<88}{100 * hits / args.rows:>8.2f}{first_ms:>9.3f}{ms:>9.3f}")

    for raw in (FILTERS[0], FILTERS[-1]):
        node = parse_filter(raw)
        ms = timed(partial(evaluate_rows, node, rows), 3)
        print(f"row evaluator over {args.rows:,} rows, {json.dumps(raw)}: {ms:.0f} ms")


if __name__ == "__main__":
    main()
