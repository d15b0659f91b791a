"""The writer's id -> row index follows deletes (every later row shifts down) and appends without reading the ids
again: checked against a plain list of the rows, through enough deletes to renumber it several times."""

from __future__ import annotations

import random

from tributary.storage import RowIndex


def test_rows_follow_deletes_and_appends_like_a_list() -> None:
    rng = random.Random(3)
    table = [f"v{i}" for i in range(500)]
    index = RowIndex(table)
    fresh = len(table)
    for _ in range(400):
        doomed = rng.sample(table, k=min(len(table), rng.randint(0, 12)))
        # Asked twice, or for ids that do not exist: each present row once.
        rows = index.remove([*doomed, *doomed[:2], "never-there"])
        assert rows == sorted(rows, reverse=True), "rows must come bottom-up, the order to delete them in"
        for row in rows:
            del table[row]
        assert not set(doomed) & set(table)
        appended = [f"v{fresh + i}" for i in range(rng.randint(0, 10))] + doomed[
            : rng.randint(0, len(doomed))
        ]
        fresh += len(appended)
        table.extend(appended)
        index.add(appended)
        assert sorted(index) == sorted(table) and len(index) == len(table)
        assert all(index.row(vector_id) == row for row, vector_id in enumerate(table))
        assert index.by_row() == dict(enumerate(table))
    assert index.row("never-there") is None


def test_a_duplicated_id_keeps_the_rows_below_it_in_place() -> None:
    # Datasets should hold each id once; one that does not (written by an older bug) must not shift the others.
    table = ["a", "b", "a", "c"]
    index = RowIndex(table)
    assert index.remove(["c"]) == [3]
    index.add(["d"])
    assert index.row("d") == 3
