"""Tables of the SQL side. Their shape is owned by the Alembic migrations in migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Float, Index, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone, stored and read back in UTC with its offset. SQLite keeps no zone (its
    CURRENT_TIMESTAMP is UTC), and a zone-less time is not an RFC 3339 `date-time`."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatasetRow(Base):
    """The dataset catalog, projected from DatasetCreated / DatasetDeleted and the vector events."""

    __tablename__ = "datasets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    dimensions: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16))
    metadata_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text_field: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The dataset's embedder configuration (events.commands.EmbedderConfig as JSON), None when it has none.
    embedder: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The named vector fields (name -> events.commands.VectorField as JSON); None for a dataset created before
    # them, which has none.
    vectors: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(64))
    vector_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )


class OperationRow(Base):
    """One accepted command: written as accepted by the command API, then applied or rejected by the
    projector when the worker's events arrive."""

    __tablename__ = "operations"
    # One operation per Idempotency-Key and tenant (rows without a key are NULL there, and NULLs never collide).
    __table_args__ = (Index("uq_operations_idempotency_key", "tenant", "idempotency_key", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(64))
    command_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # For a rejected operation: events.domain.RejectionCause.
    rejection: Mapped[str | None] = mapped_column(String(16), nullable=True)
    consistency_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set when the request carried an Idempotency-Key (the row's id then derives from the key and the request):
    # a retry with the same key and the same body gets `ids` back with the first answer, a different body is
    # refused.
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), index=True
    )


class BusCommandRow(Base):
    """Embedded mode's command log: a command is acknowledged once it is here, and applied in `seq` order."""

    __tablename__ = "bus_commands"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class BusEventRow(Base):
    """Embedded mode's domain-event log, the counterpart of the event topic."""

    __tablename__ = "bus_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160))
    body: Mapped[str] = mapped_column(Text)


class WriterLeaseRow(Base):
    """Who may write the datasets of one command-topic partition. The token grows at every assignment; an
    applier commits to DeepLake only while holding this row locked with the token it was given."""

    __tablename__ = "writer_leases"

    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )


class ApiKeyRow(Base):
    """An API key: found by its prefix, checked against the SHA-256 of its secret (tributary.auth.keys); the
    key itself is shown once at creation and stored nowhere. A revoked key keeps its row for the audit trail."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    # None: every dataset of the tenant.
    datasets: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRow(Base):
    """One audited request: every write, key change and denied request (who, what, when, outcome)."""

    __tablename__ = "audit"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[int] = mapped_column(Integer)
    # How many requests the record stands for: anonymous refusals are counted, not recorded one by one.
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class SnapshotScheduleRow(Base):
    """A dataset's snapshot schedule (command_api/schedules.py): every `every_s`, then the retention."""

    __tablename__ = "snapshot_schedules"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    every_s: Mapped[float] = mapped_column(Float)
    keep_last: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_age_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Moved on by whoever takes the snapshot due at it, in the same statement that checks it is still due: of
    # several command-API replicas, one takes each.
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# "dead" once stored, "replayed" once a replay of it was published.
DeadLetterStatus = Literal["dead", "replayed"]


class DeadLetterRow(Base):
    """A command that could not be applied, as the dead-letter topic (or embedded mode's log) carried it, kept
    until it is replayed or purged. Written by `workers/dead_letters.store_dead_letter` from either transport."""

    __tablename__ = "dead_letters"

    # Derived from where the message was (topic, partition, offset), so a dead letter read twice is one row.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The tenant and dataset the message names (its envelope, else its key); the default tenant's when it names
    # none. NULL dataset: the message named none.
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # None when the message is not a command (it cannot be replayed as it is).
    command_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    source_topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int | None] = mapped_column(Integer, nullable=True)
    offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[DeadLetterStatus] = mapped_column(String(16), index=True)
    # The operation of the command that replayed it.
    replay_operation: Mapped[str | None] = mapped_column(String(36), nullable=True)
