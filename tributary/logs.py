"""Logging of every role: one format, and a repeated line logged once with a count.

With a dependency away, clients log the same failure many times a second (aiokafka's `Unable connect to node`).
The first occurrence of a line is logged at once; the same line again (same logger, level and text) within
`REPEAT_WINDOW_S` is counted, not logged, and the next one after the window carries the count.
"""

from __future__ import annotations

import logging
import time

REPEAT_WINDOW_S = 30.0
# Distinct lines remembered; past that the oldest are forgotten (they are then logged again once).
REMEMBERED = 1024


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self._window_s = window_s
        # line -> (when it was last logged, how many were held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        last, held = self._seen.get(key, (float("-inf"), 0))
        if now - last < self._window_s:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.getMessage()} (and {held} more times in the last {now - last:.0f} s)"
            record.args = None
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > REMEMBERED:
            del self._seen[next(iter(self._seen))]
        return True


def configure() -> None:
    """Log INFO and above to stderr, each handler behind a RepeatFilter of its own (a filter counts the records
    it sees, and one shared by two handlers would see each record twice)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic logs its plugins and every migration at INFO on each start: only its warnings are news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
