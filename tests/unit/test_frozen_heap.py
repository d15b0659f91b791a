"""A started role keeps its heap out of the garbage collector's passes while it runs, and gives it back when it
stops (tests start many roles in one process: what a stopped one held must be collectable again)."""

from __future__ import annotations

import gc
from contextlib import AsyncExitStack

from entrypoints.bootstrap import freeze_startup_heap


async def test_a_role_freezes_its_started_heap_until_it_stops() -> None:
    gc.unfreeze()
    async with AsyncExitStack() as stack:
        freeze_startup_heap(stack)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
