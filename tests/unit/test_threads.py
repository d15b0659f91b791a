"""A cancelled caller does not leave its thread running behind it (the lease it holds would be released while
the thread goes on to commit)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tributary.threads import in_thread_to_completion


async def test_cancellation_waits_for_the_thread_to_finish() -> None:
    started, finished = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    caller = asyncio.create_task(in_thread_to_completion(work))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set(), "the cancellation went on while the thread was still working"


async def test_results_and_errors_pass_through() -> None:
    assert await in_thread_to_completion(lambda x: x * 2, 21) == 42
    with pytest.raises(ZeroDivisionError):
        await in_thread_to_completion(lambda: 1 / 0)
