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
    files = ["tests/test_fencing.py", "tests/test_slice_kafka.py", "tests/unit/test_threads.py"]
    # distributed_settings needs the broker: every test of these two Kafka files uses it.
    assert all(t.startswith("tests/unit/") for t in collected("-m", "not kafka", *files))
    kafka = collected("-m", "kafka", *files)
    assert kafka and not any(t.startswith("tests/unit/") for t in kafka)
