"""The applier's batch pipeline, one for every transport: a batch of raw commands of one partition (Kafka) or of
the embedded bus's log goes in; the events to publish and the dead letters come out, with the batch settled.

The transport fetches the messages, hands over its fence, publishes or writes the outcome, and only then commits
past the batch; everything between is here: parsing, applying under the fence, counting the deliveries that
failed, and giving up on a batch's crashing commands after `MAX_ATTEMPTS`. Parsing and serialising run in a
thread: Pydantic takes about 16-19 ms per command of 1,000 x 384 vectors, which would otherwise hold the event
loop (in embedded mode, the one serving searches).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import ValidationError

from events import Command, CommandRejected, DomainEvent, parse_command
from tributary import tracing
from tributary.bus import ConsistencyToken
from tributary.logs import without_input
from tributary.metrics import count_dead_letters
from tributary.resilience import Unavailable
from tributary.storage import DatasetStore
from tributary.threads import in_thread_to_completion
from workers.isolation import MAX_ATTEMPTS, apply_batch

log = logging.getLogger(__name__)

M = TypeVar("M")

# Entered around applying a batch: proves the transport still owns the batch's partition (or raises). A failure
# of the fence is not the batch's fault and does not count towards giving up on its commands.
Fence = Callable[[], AbstractAsyncContextManager[object]]


@dataclass(frozen=True)
class EncodedEvent:
    event: DomainEvent
    body: bytes


@dataclass(frozen=True)
class Letter(Generic[M]):
    """A message that goes to the dead letters: unreadable, rejected by the applier, or crashing it."""

    message: M
    reason: str


@dataclass(frozen=True)
class Settled(Generic[M]):
    """What a batch came to. The transport publishes (or writes) `events`, then `dead_letters`, and only then
    commits past `messages`: if that fails, the batch comes again and the ledgers recognise what was applied."""

    messages: Sequence[M]
    events: list[EncodedEvent]
    dead_letters: list[Letter[M]]


class ApplierPipeline(Generic[M]):
    """Applies batches of one transport's messages; `body` reads a message's raw command, `position` says where
    it is in the command log (the first message's position names a batch across redeliveries, for counting its
    failed attempts; a snapshot's manifest records its command's)."""

    def __init__(
        self,
        store: DatasetStore,
        *,
        body: Callable[[M], bytes | str],
        position: Callable[[M], ConsistencyToken],
    ) -> None:
        self._store = store
        self._body, self._position = body, position
        # Failed deliveries of a batch, by the position of its first message.
        self._failures: dict[ConsistencyToken, int] = {}

    def failures(self, messages: Sequence[M]) -> int:
        """How many deliveries of this batch failed so far (the applier raised)."""
        return self._failures.get(self._position(messages[0]), 0)

    async def apply(self, messages: Sequence[M], fence: Fence = nullcontext) -> Settled[M]:
        """Parse, apply under `fence`, and say what to publish. Raises when the batch is to be delivered again:
        whatever the fence raises (uncounted), or the applier's error while it still looks like an outage
        (counted: after `MAX_ATTEMPTS` deliveries its crashing commands are dead-lettered)."""
        started = time.time_ns()
        first = self._position(messages[0])
        readable: list[tuple[M, Command]] = []
        letters: list[Letter[M]] = []
        parsed = await asyncio.to_thread(_parse, [self._body(message) for message in messages])
        for message, command in zip(messages, parsed, strict=True):
            if isinstance(command, str):
                letters.append(Letter(message, command))
            else:
                readable.append((message, command))
        commands = [command for _, command in readable]
        with tracing.batch(
            "apply batch", commands, start_time=started, attributes={"tributary.batch_size": len(messages)}
        ) as batch:
            attempt = self._failures.get(first, 0) + 1
            async with fence():
                try:
                    outcome = await in_thread_to_completion(
                        apply_batch,
                        commands,
                        self._store,
                        give_up=attempt >= MAX_ATTEMPTS,
                        positions={command.id: self._position(message) for message, command in readable},
                    )
                except Unavailable:
                    # An outage is waited out: it counts no failed delivery against the batch's commands.
                    raise
                except Exception:
                    self._failures[first] = attempt
                    raise
            self._failures.pop(first, None)
            # `apply_batch` gives one event per command, in order; each event carries on its command's trace.
            applied = tracing.each_message("apply", commands, start_time=started, batch=batch)
            caused = [
                tracing.stamped(event, span) for event, span in zip(outcome.events, applied, strict=True)
            ]
            unreadable = len(letters)
            letters += [
                Letter(message, event.payload.reason)
                for (message, _), event in zip(readable, caused, strict=True)
                if isinstance(event, CommandRejected)
            ]
            count_dead_letters(unreadable=unreadable, rejected=len(letters) - unreadable)
            for letter in letters:
                log.warning(
                    "dead-lettering the command at %s: %s", self._position(letter.message), letter.reason
                )
            events = await asyncio.to_thread(_encode, caused)
        return Settled(messages, events, letters)


def _parse(bodies: list[bytes | str]) -> list[Command | str]:
    """Each body's command, or why it is none."""
    parsed: list[Command | str] = []
    for body in bodies:
        try:
            parsed.append(parse_command(body))
        except ValidationError as exc:
            parsed.append(f"invalid command: {without_input(exc)}")
    return parsed


def _encode(events: list[DomainEvent]) -> list[EncodedEvent]:
    return [EncodedEvent(event, event.model_dump_json().encode()) for event in events]
