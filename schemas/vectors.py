"""Request models of the vector write routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.commands import Metadata, VectorId
from events.filters import FilterDict

MAX_RECORDS = 10_000

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class VectorRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: VectorId | None = Field(default=None, description="Client id; generated and returned when missing")
    vector: list[FiniteFloat] | None = None
    text: str | None = None
    metadata: Metadata | None = None


class UpsertVectorsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vectors: list[VectorRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class DeleteVectorsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[VectorId] | None = Field(default=None, min_length=1, max_length=MAX_RECORDS)
    filter: FilterDict | None = Field(default=None, description="Delete every vector whose metadata matches")

    @model_validator(mode="after")
    def _one_selector(self) -> DeleteVectorsRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        if self.filter == {}:
            # An empty filter matches every vector: too easy to send by mistake to mean "delete all".
            raise ValueError("an empty filter would delete every vector; delete the dataset, or give ids")
        return self


class MetadataPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: Metadata
    merge: bool = Field(default=True, description="Merge into the stored metadata, or replace it")
