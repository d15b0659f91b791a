"""The applier's exactly-once rests on one DeepLake property: the ledger never runs ahead of the data, so a
command recorded as applied always has its rows after a SIGKILL. Checked with real processes killed in the
middle of commits. (Dataset metadata does not have this property in DeepLake 4.7: it once recorded a commit
whose rows were lost. The commit message does, but DeepLake's compaction (every 64 commits, or sooner) drops
every commit message and leaves a head without one until the next commit; the ledger is then empty and
redelivered commands are applied again, which converges because every command is idempotent on the state:
tests/test_applier_crashes.py.)"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from events.commands import FieldType
from tributary.storage import Commit, DatasetSpec, DatasetStore

CHILD = """
import sys, numpy as np
from events import UpsertVectors, UpsertVectorsPayload
from tributary.storage import DatasetStore
writer = DatasetStore(sys.argv[1]).writer("t", "d")
vectors = np.ones((1000, 8), dtype=np.float32)
while True:
    command = UpsertVectors(tenant="t", dataset="d", payload=UpsertVectorsPayload(ids=["x"], vectors=vectors[:1]))
    writer.upsert([f"{command.id}-{i}" for i in range(1000)], vectors, None, None)
    writer.applied(command)
    writer.commit()
"""


def test_ledger_and_rows_survive_a_sigkill_together(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    schema: dict[str, FieldType] = {}
    store.create("t", "d", DatasetSpec(dimensions=8, metric="l2", metadata_schema=schema), Commit([], []))
    rng = random.Random(5)
    for _ in range(4):
        before = store.version("t", "d")
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)])
        # Kill it at a random point once it commits (start-up takes seconds on a loaded machine).
        deadline = time.monotonic() + 60
        while store.version("t", "d") == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.1, 1.5))
        child.kill()
        child.wait()
        writer = DatasetStore(str(tmp_path)).writer("t", "d")
        assert writer is not None
        rows = Counter(vector_id.rsplit("-", 1)[0] for vector_id in writer._rows)
        ledger = set(writer._ledger)
        assert rows, "the child never committed"
        assert not ledger - set(rows), f"{len(ledger - set(rows))} commands in the ledger without their rows"
        assert all(rows[command] == 1000 for command in ledger), "a recorded command lost some of its rows"
