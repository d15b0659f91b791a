"""`pytest -m "not kafka"` leaves out every test that needs the broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def collected(*args: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in run.stdout.splitlines() if "::" in line]


def test_tests_that_use_kafka_are_marked_kafka() -> None:
    # Every test of test_fencing.py uses distributed_settings, which needs the broker; test_threads.py none.
    kept = collected("-m", "not kafka", "tests/test_fencing.py", "tests/unit/test_threads.py")
    assert kept and all(t.startswith("tests/unit/test_threads.py") for t in kept), kept
