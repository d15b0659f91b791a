"""Dead-letter records: a message that could not be applied, kept whole with the reason, for replay."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from events.envelope import utc_now


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    message: str = Field(description="The original message body, decoded as UTF-8 with replacement")
    failed_at: datetime = Field(default_factory=utc_now)
