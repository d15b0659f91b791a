"""Keeping one bad command from stopping a batch: retry, isolate, and give up on a command only when the
others show the failure is the command's and not the system's."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from events import Command, DomainEvent
from tributary.bus import ConsistencyToken
from tributary.deeplake_lib import STORAGE_OUTAGES, storage_unavailable
from tributary.metrics import ACK_TO_APPLIED, APPLIER_APPLY_SECONDS, APPLIER_BATCH_COMMANDS, observe_since
from tributary.storage import DatasetStore
from workers.applier import apply_commands, rejection

log = logging.getLogger(__name__)

# Deliveries of the same batch that fail before its failing commands are dead-lettered even when nothing
# else in it could be applied (a single command that always crashes would otherwise block its partition).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class BatchOutcome:
    events: list[DomainEvent]
    # (index in the batch, reason) of the commands that crashed the applier: they go to the dead letters.
    poisoned: list[tuple[int, str]] = field(default_factory=list)


def apply_batch(
    commands: Sequence[Command],
    store: DatasetStore,
    *,
    give_up: bool,
    positions: Mapping[UUID, ConsistencyToken] | None = None,
) -> BatchOutcome:
    """Apply the batch in one go; if that crashes, apply its commands one by one. A command that still crashes
    is rejected and reported as poisoned, unless every command crashed and `give_up` is false: that looks like
    an outage, so the error propagates and the batch is delivered again later. A storage outage DeepLake names
    (STORAGE_OUTAGES) raises `Unavailable` at once, `give_up` or not."""
    APPLIER_BATCH_COMMANDS.observe(len(commands))
    with APPLIER_APPLY_SECONDS.time():
        outcome = _apply_batch(commands, store, give_up, positions or {})
    observe_since(ACK_TO_APPLIED, [command.occurred_at for command in commands])
    return outcome


def _apply_batch(
    commands: Sequence[Command],
    store: DatasetStore,
    give_up: bool,
    positions: Mapping[UUID, ConsistencyToken],
) -> BatchOutcome:
    try:
        return BatchOutcome(apply_commands(commands, store, positions))
    except STORAGE_OUTAGES as exc:
        # However many deliveries failed so: no command is at fault, none is dead-lettered.
        raise storage_unavailable(exc) from exc
    except Exception:
        if len(commands) == 1 and not give_up:
            raise
        log.exception("a batch of %d commands failed; applying them one by one", len(commands))
    events: list[DomainEvent] = []
    poisoned: list[tuple[int, str]] = []
    failure: Exception | None = None
    for index, command in enumerate(commands):
        try:
            events.extend(apply_commands([command], store, positions))
        except STORAGE_OUTAGES as exc:
            raise storage_unavailable(exc) from exc
        except Exception as exc:
            failure = exc
            reason = f"the applier failed on this command: {type(exc).__name__}: {exc}"
            poisoned.append((index, reason))
            events.append(rejection(command, reason))
    if failure is not None and len(poisoned) == len(commands) and not give_up:
        raise failure
    return BatchOutcome(events, poisoned)
