"""Request models of the vector write routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.commands import VectorId

MAX_RECORDS = 10_000

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class VectorRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: VectorId | None = Field(default=None, description="Client id; generated and returned when missing")
    vector: list[FiniteFloat] | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None


class UpsertVectorsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vectors: list[VectorRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class DeleteVectorsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[VectorId] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> DeleteVectorsRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        return self


class MetadataPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any]
    merge: bool = Field(default=True, description="Merge into the stored metadata, or replace it")
