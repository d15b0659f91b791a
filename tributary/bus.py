"""What the command API needs of a message bus, whichever carries the commands (Kafka or embedded)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from events import Command, DeleteVectors, UpdateMetadata, UpsertVectors
from tributary.metrics import BYTES_ACCEPTED, COMMANDS_ACCEPTED, RECORDS_ACCEPTED

# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
TOKEN_PATTERN = r"^[0-9]{1,10}:[0-9]{1,19}$"


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
        if re.fullmatch(TOKEN_PATTERN, raw) is None:
            raise ValueError("a consistency token looks like '<partition>:<offset>'")
        partition, _, offset = raw.partition(":")
        return cls(int(partition), int(offset))


@dataclass(frozen=True)
class EncodedCommand:
    """A command and its JSON, serialised once: the command side measures these bytes to split a request and
    publishes them as they are."""

    command: Command
    body: bytes

    @classmethod
    def of(cls, command: Command) -> EncodedCommand:
        return cls(command, command.model_dump_json().encode())


class PublishFailed(Exception):
    """The bus did not take the commands in time (its broker is away). `unconfirmed`: some may still arrive, so
    the request's outcome is unknown until they do or a retry with the same Idempotency-Key publishes again."""

    def __init__(self, reason: str, *, unconfirmed: bool) -> None:
        super().__init__(reason)
        self.reason, self.unconfirmed = reason, unconfirmed


class CommandPublisher(Protocol):
    async def publish(self, commands: Sequence[EncodedCommand]) -> ConsistencyToken:
        """Durably hand over the commands of one request, all or none (in order, on one partition: they share
        a dataset); returns the token of the last one, only once none can be lost. Raises PublishFailed."""
        ...


def count_accepted(commands: Sequence[EncodedCommand]) -> None:
    """Count the commands a bus took, their records and bytes, in tributary/metrics.py."""
    for encoded in commands:
        kind = encoded.command.type
        COMMANDS_ACCEPTED.labels(kind).inc()
        RECORDS_ACCEPTED.labels(kind).inc(_records(encoded.command))
        BYTES_ACCEPTED.labels(kind).inc(len(encoded.body))


def _records(command: Command) -> int:
    match command:
        case UpsertVectors(payload=p):
            return len(p.ids)
        case DeleteVectors(payload=p):
            # A delete by filter names no records: how many it removes is known only once applied.
            return len(p.ids or [])
        case UpdateMetadata():
            return 1
    return 0
