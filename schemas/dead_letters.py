"""Response models of the dead-letter admin calls (command_api/dead_letters.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.datasets import Accepted
from tributary.db.models import DeadLetterStatus


class DeadLetterView(BaseModel):
    """A dead letter without its message (`GET /api/v1/admin/dead-letters/{id}` has it)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant: str
    dataset: str | None = Field(description="The dataset its message names (none: it names none)")
    command_type: str | None = Field(description="The `type` its message claims (none: it claims none)")
    idempotency_key: str | None = Field(description="The original command's Idempotency-Key")
    reason: str
    source_topic: str = Field(description="The command topic, or `bus_commands` in embedded mode")
    partition: int | None
    offset: int | None = Field(
        description="Its offset in the command topic (embedded mode: its log sequence)"
    )
    key: str | None
    failed_at: datetime
    status: DeadLetterStatus
    replay_operation: str | None = Field(description="The operation that replayed it")


class DeadLetterDetail(DeadLetterView):
    envelope: dict[str, Any] | None = Field(description="The original message, when it is a JSON object")
    message: str | None = Field(description="The original message as received, when it is not a JSON object")


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterView] = Field(description="Oldest first")
    next_offset: int | None = Field(description="The `offset` of the next page (none: this was the last)")


class ReplayedLetter(BaseModel):
    dead_letter: str
    operation: Accepted


class UnreplayableLetter(BaseModel):
    dead_letter: str
    reason: str


class ReplayReport(BaseModel):
    replayed: list[ReplayedLetter] = Field(description="In their original order, each a new operation")
    skipped: list[UnreplayableLetter] = Field(description="Dead letters whose message is not a command")


class Purged(BaseModel):
    purged: int
