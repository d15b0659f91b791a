"""Request and response models of the snapshot routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from events.commands import Metric, Retention
from schemas.requests import RequestModel


class CreateSnapshotRequest(RequestModel, Retention):
    pass


# A snapshot copies the whole dataset: more often than this would do little but copy.
MIN_SCHEDULE_EVERY_S = 1.0


class SnapshotSchedule(RequestModel, Retention):
    """A dataset's snapshots taken every `every_s`, each through the command log like a requested one, with the
    retention applied after each."""

    every_s: float = Field(
        ge=MIN_SCHEDULE_EVERY_S, le=366 * 86_400, description="Seconds between two scheduled snapshots"
    )


class SnapshotScheduleView(SnapshotSchedule):
    # An answer, not a request: a field the server adds later must not break a client generated from it.
    model_config = ConfigDict(from_attributes=True, extra="ignore", strict=False)

    dataset: str
    next_at: datetime = Field(description="When the next scheduled snapshot is taken")


class SnapshotView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    snapshot_id: str = Field(description="The operation id of the request that made it")
    dataset: str
    version: str = Field(description="The DeepLake version it holds (tagged snapshot-<id> in the dataset)")
    vector_count: int
    dimensions: int
    metric: Metric
    created_at: datetime
    size_bytes: int
    encrypted: bool


class SnapshotList(BaseModel):
    snapshots: list[SnapshotView] = Field(description="Oldest first")
