"""A cancelled caller does not leave its thread running behind it (the lease it holds would be released while
the thread goes on to commit)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tributary.threads import in_thread_to_completion


async def test_cancellation_waits_for_the_thread_to_finish() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(60)
        finished.set()

    caller = asyncio.create_task(in_thread_to_completion(work))
    await asyncio.to_thread(started.wait, 60)
    caller.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not caller.done(), "the cancellation went on while the thread was still working"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set()


async def test_results_and_errors_pass_through() -> None:
    assert await in_thread_to_completion(lambda x: x * 2, 21) == 42
    with pytest.raises(ZeroDivisionError):
        await in_thread_to_completion(lambda: 1 / 0)
