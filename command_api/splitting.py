"""Splitting a large upsert into commands that fit a Kafka message, published together as one request."""

from __future__ import annotations

import math
from uuid import NAMESPACE_URL, uuid5

from events import Command, Part, UpsertVectors
from tributary.bus import EncodedCommand


def split_command(command: Command, max_bytes: int) -> list[EncodedCommand]:
    """The command itself when its JSON fits in `max_bytes`, else upsert parts that each fit. The parts share
    the command's id as their operation id; their own ids derive from it, so a retried split yields the same
    commands. Each command is serialised once, here: the bytes measured are the bytes published."""
    whole = EncodedCommand.of(command)
    size = len(whole.body)
    if size <= max_bytes or not isinstance(command, UpsertVectors) or len(command.payload.ids) < 2:
        return [whole]
    rows = len(command.payload.ids)
    count = min(rows, math.ceil(size / max_bytes))
    while True:
        parts = [EncodedCommand.of(_part(command, index, count)) for index in range(count)]
        if count == rows or all(len(part.body) <= max_bytes for part in parts):
            return parts
        count = min(rows, count * 2)


def _part(command: UpsertVectors, index: int, count: int) -> UpsertVectors:
    rows = len(command.payload.ids)
    payload = command.payload.rows(rows * index // count, rows * (index + 1) // count)
    return command.model_copy(
        update={
            "id": uuid5(NAMESPACE_URL, f"tributary:{command.id}:part:{index}"),
            "operation_id": command.id,
            "part": Part(index=index, count=count),
            "payload": payload,
        }
    )
