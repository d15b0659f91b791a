"""Dead letters kept in SQL, whichever transport wrote them: the Kafka projector stores each record of the
dead-letter topic, the embedded bus each command it marks dead, both through `store_dead_letter`, so the admin
API and the CLI list, replay and purge them the same way (command_api/dead_letters.py).

A stored dead letter's id derives from where its message was (topic, partition, offset) and the message itself,
so a dead letter read twice (a redelivered batch dead-letters its commands again) is one row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any, get_args
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import DeadLetter
from events.names import NAME_PATTERN
from tributary.db.models import DeadLetterRow, DeadLetterStatus
from tributary.metrics import DEAD_LETTERS_STORED

# How often the gauge of stored dead letters is read from SQL: a fraction of a scrape interval.
SAMPLE_S = 5.0


def dead_letter_id(letter: DeadLetter) -> str:
    digest = hashlib.sha256(letter.message.encode()).hexdigest()
    where = f"{letter.source_topic}:{letter.partition}:{letter.offset}:{digest}"
    return str(uuid5(NAMESPACE_URL, f"tributary:dead-letter:{where}"))


def dead_letter_row(letter: DeadLetter, default_tenant: str) -> DeadLetterRow:
    """The row of a dead letter: its tenant and dataset are those its message names (its envelope, else its
    key), the default tenant's when it names none, so the operator sees what no tenant can."""
    claims = _claims(letter.message)
    key_tenant, _, key_dataset = (letter.key or "").partition("/")
    return DeadLetterRow(
        id=dead_letter_id(letter),
        tenant=_name(claims.get("tenant")) or _name(key_tenant) or default_tenant,
        dataset=_name(claims.get("dataset")) or _name(key_dataset),
        command_type=_bounded(claims.get("type"), 32),
        idempotency_key=_bounded(claims.get("idempotency_key"), 256),
        reason=letter.reason,
        source_topic=letter.source_topic,
        partition=letter.partition,
        offset=letter.offset,
        key=_bounded(letter.key, 255),
        message=letter.message,
        failed_at=letter.failed_at,
        status="dead",
    )


async def store_dead_letter(letter: DeadLetter, session: AsyncSession, *, default_tenant: str) -> None:
    """Keep `letter` (once: a dead letter stored before is left as it is, replayed or not)."""
    # A poison upsert can carry megabytes of vectors: read off the event loop.
    row = await asyncio.to_thread(dead_letter_row, letter, default_tenant)
    if await session.get(DeadLetterRow, row.id) is None:
        session.add(row)


async def sample_dead_letters(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Every SAMPLE_S, the stored dead letters by status, as tributary_dead_letters_stored. Read from SQL, so
    it counts what every process stored, replayed and purged."""
    while True:
        async with sessions() as session:
            rows = await session.execute(
                select(DeadLetterRow.status, func.count()).group_by(DeadLetterRow.status)
            )
            counts = {status: int(count) for status, count in rows}
        for status in get_args(DeadLetterStatus):
            DEAD_LETTERS_STORED.labels(status).set(counts.get(status, 0))
        await asyncio.sleep(SAMPLE_S)


def _claims(message: str) -> dict[str, Any]:
    """What a message says it is, whether or not it is a valid command."""
    try:
        body = json.loads(message)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) else None


def _bounded(value: object, length: int) -> str | None:
    return value if isinstance(value, str) and len(value) <= length else None
