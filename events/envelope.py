"""The one envelope every command and domain event travels in."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from events.names import Name


def utc_now() -> datetime:
    return datetime.now(UTC)


class TraceContext(BaseModel):
    """W3C trace context, so a trace crosses Kafka from the API to the workers and on to stream consumers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    traceparent: str | None = None
    tracestate: str | None = None


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
