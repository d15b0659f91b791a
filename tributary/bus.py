"""What the command API needs of a message bus, whichever carries the commands (Kafka or embedded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from events import Command


@dataclass(frozen=True)
class ConsistencyToken:
    """Where a command landed in the log: its partition and offset. A read that waits for this position
    to be applied sees the write (read-your-writes)."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, raw: str) -> ConsistencyToken:
        partition, _, offset = raw.partition(":")
        # ASCII digits only (str.isdigit takes "²"), and no more than an int64 offset has.
        if not all(part.isascii() and part.isdigit() and len(part) <= 18 for part in (partition, offset)):
            raise ValueError("a consistency token looks like '<partition>:<offset>'")
        return cls(int(partition), int(offset))


class CommandPublisher(Protocol):
    async def publish(self, commands: Sequence[Command]) -> ConsistencyToken:
        """Durably hand over the commands of one request, all or none (in order, on one partition: they share
        a dataset); returns the token of the last one, only once none can be lost."""
        ...
