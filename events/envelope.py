"""The one envelope every command and domain event travels in."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.names import Name


def utc_now() -> datetime:
    return datetime.now(UTC)


class TraceContext(BaseModel):
    """W3C trace context, so a trace crosses Kafka from the API to the workers and on to stream consumers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    traceparent: str | None = None
    tracestate: str | None = None


class Part(BaseModel):
    """Where a command sits in a request that was split into several commands (published in one transaction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    count: int = Field(ge=1)

    @model_validator(mode="after")
    def _within(self) -> Part:
        if self.index >= self.count:
            raise ValueError(f"part index {self.index} is not below the part count {self.count}")
        return self

    @property
    def last(self) -> bool:
        return self.index == self.count - 1


class Envelope(BaseModel):
    """Fields shared by every message. Subclasses fix `type` to a literal and give `payload` its model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=uuid4, description="Message id; consumers deduplicate on it")
    type: str = Field(description="Message type, the discriminator of the topic's union")
    schema_version: int = Field(default=1, ge=1, description="Version of this type's payload schema")
    tenant: Name
    dataset: Name
    occurred_at: datetime = Field(default_factory=utc_now)
    idempotency_key: str | None = Field(default=None, max_length=256)
    causation_id: UUID | None = Field(
        default=None, description="For a domain event: the id of the command that caused it"
    )
    trace: TraceContext = Field(default_factory=TraceContext)
    operation_id: UUID | None = Field(
        default=None,
        description="The request this message belongs to, where that is not `id` (or, for an event, "
        "`causation_id`): the parts of a split request share it",
    )
    part: Part | None = Field(default=None, description="Set on the parts of a split request")

    @property
    def operation(self) -> UUID:
        """The operation id a client sees for this message."""
        return self.operation_id or self.causation_id or self.id
