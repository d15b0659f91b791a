"""How a filtered vector search runs: the route, chosen by how many rows the filter keeps. Neither route calls
Python for each candidate (hnswlib's `filter=` did, holding the interpreter for about a quarter of a filtered
query): the filter is a numpy mask over columnar metadata (tributary/metadata_columns.py), and

- `exact`: the allowed rows are gathered and scored with one BLAS matrix-vector product; recall 1.
- `post_filter`: HNSW is searched unfiltered for `oversampled(...)` neighbours, enough that about `OVERSAMPLE`
  times k of them should pass a filter that keeps that share of the indexed rows, and the mask drops the rest.
  When fewer than k pass (a filter whose rows lie away from the query), the exact scan answers instead.

The exact scan costs about one unit per allowed row, HNSW about one per candidate it is asked for (its breadth is
at least that), so the cheaper route is exact while the allowed rows are at most `ROWS_PER_CANDIDATE` times the
candidates. As the candidates are k x OVERSAMPLE x indexed / allowed, the crossover in allowed rows grows as
sqrt(k x indexed): a fixed share of a larger dataset is post-filtered, a fixed number of rows is scanned.
"""

from __future__ import annotations

import math
from typing import Literal

Route = Literal["exact", "post_filter"]

# bench/filtered.py, 40,000 real passages embedded with the packaged model, target recall 0.99 (ef tuned to 192):
# post-filtering with twice k expected to pass recalled 0.990-0.998 at 5-80% selectivity (unfiltered search
# 0.993 at that ef), with 1.5 times 0.988 at 30%, and 3 times cost up to 1.7x as much for no better recall there.
# The routes cost the same at 19-25 allowed rows per candidate (19.1 at 10%, where both took 1.05 ms: 4,000
# rows scanned, 200 candidates).
OVERSAMPLE = 2.0
ROWS_PER_CANDIDATE = 20.0


def oversampled(k: int, allowed_indexed: int, indexed: int) -> int:
    """The unfiltered neighbours to ask HNSW for, so that about OVERSAMPLE x k pass the filter: all the indexed
    rows at most (and when none of them is allowed)."""
    if allowed_indexed == 0:
        return indexed
    return min(indexed, math.ceil(OVERSAMPLE * k * indexed / allowed_indexed))


def route(allowed: int, candidates: int, indexed: int) -> Route:
    """The cheaper route for `allowed` rows (indexed or pending) when post-filtering asks for `candidates`."""
    if candidates >= indexed or allowed <= ROWS_PER_CANDIDATE * candidates:
        return "exact"
    return "post_filter"
