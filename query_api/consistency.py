"""Consistency levels of reads, and what a replica's answer reflects.

- `eventual`: answer from the projection as it is.
- `bounded` (default): as it is, if the replica has been caught up with the event log within the staleness bound
  (`bounded_staleness_s`); otherwise first catch up with the log as it is now.
- `session`: the write with this consistency token (partition:offset of its command) is visible first.
- `strong`: every command accepted for the dataset before the read is visible first.

A read that cannot be brought to its level within `read_timeout_s` answers 504 and says so.
"""

from __future__ import annotations

from typing import Literal, Protocol

from tributary.bus import ConsistencyToken

ConsistencyLevel = Literal["eventual", "bounded", "session", "strong"]


class TokenBeyondLog(ValueError):
    """A `session` token that names a partition or offset the command log does not have (yet): no write of this
    deployment answered it, so waiting for it would only time out."""

    def __init__(self) -> None:
        super().__init__(
            "this consistency token is beyond the end of the command log: not one this deployment gave"
        )


class ReadBarrier(Protocol):
    async def reach(
        self,
        level: ConsistencyLevel,
        tenant: str,
        dataset: str,
        token: ConsistencyToken | None,
        timeout: float,
    ) -> bool:
        """Wait until the replica's projections satisfy `level`; False when `timeout` passed first. A `session`
        token beyond the end of the command log raises TokenBeyondLog at once."""
        ...

    def reflected(self) -> dict[str, int]:
        """How far the replica has applied the log: event-topic partition -> next offset (embedded: "0" -> seq)."""
        ...


class AppliedLog(Protocol):
    """The embedded bus (entrypoints/embedded_bus.py) as a read waits on it."""

    @property
    def applied_seq(self) -> int: ...

    async def last_seq(self) -> int: ...

    async def wait_applied(self, token: ConsistencyToken, timeout: float) -> bool: ...


class EmbeddedBarrier:
    """Embedded mode: the bus updates the projections before it counts a command applied, so waiting for the
    bus is waiting for the projections."""

    def __init__(self, bus: AppliedLog) -> None:
        self._bus = bus

    async def reach(
        self,
        level: ConsistencyLevel,
        tenant: str,
        dataset: str,
        token: ConsistencyToken | None,
        timeout: float,
    ) -> bool:
        if level == "session" and token is not None:
            if token.partition != 0 or token.offset > await self._bus.last_seq():
                raise TokenBeyondLog
            return await self._bus.wait_applied(token, timeout)
        if level == "strong":
            return await self._bus.wait_applied(ConsistencyToken(0, await self._bus.last_seq()), timeout)
        return True  # one process: the projections trail the log by at most the batch being applied

    def reflected(self) -> dict[str, int]:
        return {"0": self._bus.applied_seq}
