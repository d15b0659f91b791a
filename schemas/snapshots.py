"""Request and response models of the snapshot routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from events.commands import Integer, Metric
from schemas.requests import RequestModel


class CreateSnapshotRequest(RequestModel):
    keep_last: Integer | None = Field(
        default=None, ge=1, le=10_000, description="Then keep at most this many snapshots of the dataset"
    )
    max_age_days: float | None = Field(
        default=None, gt=0, le=36_500, description="Then delete the dataset's snapshots older than this"
    )


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
