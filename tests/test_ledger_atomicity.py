"""The applier's exactly-once rests on one DeepLake property: a commit's ledger entry and its rows survive
a SIGKILL together or not at all. Checked here with real processes killed in the middle of commits (dataset
metadata does not have this property in DeepLake 4.7: it once said a commit happened whose rows were lost)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from events.commands import FieldType
from tributary.storage import DatasetSpec, DatasetStore

CHILD = """
import sys, uuid, numpy as np
from tributary.storage import DatasetStore
writer = DatasetStore(sys.argv[1]).writer("t", "d")
while True:
    command = uuid.uuid4().hex
    writer.upsert([f"{command}-{i}" for i in range(1000)], np.ones((1000, 8), dtype=np.float32), None, None)
    writer.applied(command)
    writer.commit()
"""


def test_ledger_and_rows_survive_a_sigkill_together(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    schema: dict[str, FieldType] = {}
    store.create("t", "d", DatasetSpec(dimensions=8, metric="l2", metadata_schema=schema), message="create")
    rng = random.Random(5)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)])
        time.sleep(rng.uniform(1.5, 3.0))
        child.kill()
        child.wait()
        writer = DatasetStore(str(tmp_path)).writer("t", "d")
        assert writer is not None
        rows = Counter(vector_id.rsplit("-", 1)[0] for vector_id in writer._rows)
        ledger = set(writer._ledger)
        assert ledger, "the child never committed"
        assert set(rows) == ledger, f"{len(set(rows) - ledger)} commands with rows but no ledger entry, " + (
            f"{len(ledger - set(rows))} in the ledger without rows"
        )
        assert set(rows.values()) == {1000}
