"""A repeated log line is logged once, then with the count of the ones held back; reconnect backoff grows with
jitter up to its ceiling."""

from __future__ import annotations

import logging
import time

from tributary.kafka_backoff import FIRST_BACKOFF_S, MAX_BACKOFF_S, backoff_s
from tributary.logs import RepeatFilter


def record(message: str, *args: object, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, None)


def test_a_repeated_line_is_logged_once_then_with_its_count() -> None:
    repeats = RepeatFilter(window_s=0.05)
    line = "Unable connect to node with id %s: %s"
    assert repeats.filter(record(line, 1, "refused"))
    assert not any(repeats.filter(record(line, 1, "refused")) for _ in range(3))
    # Another text, level or logger is another line.
    assert repeats.filter(record(line, 2, "refused"))
    assert repeats.filter(record(line, 1, "refused", name="aiokafka.client"))
    time.sleep(0.1)
    after = record(line, 1, "refused")
    assert repeats.filter(after)
    assert after.getMessage().startswith(
        "Unable connect to node with id 1: refused (and 3 more times in the last"
    )
    # The count starts again.
    time.sleep(0.1)
    again = record(line, 1, "refused")
    assert repeats.filter(again) and again.getMessage() == "Unable connect to node with id 1: refused"


def test_reconnect_backoff_doubles_with_jitter_up_to_its_ceiling() -> None:
    for failures in range(1, 12):
        ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (failures - 1))
        assert all(ceiling / 2 <= backoff_s(failures) <= ceiling for _ in range(50))
    assert backoff_s(1000) <= MAX_BACKOFF_S
