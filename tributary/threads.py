"""Running blocking work in a thread without leaving it behind when the caller is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_thread_to_completion(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like `asyncio.to_thread`, but a cancelled caller still waits for the thread to finish before the
    cancellation goes on. A thread cannot be stopped: without this, a worker stopped in the middle of a batch
    would release its lease while its thread goes on to commit to DeepLake, a second writer behind the fence."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise
