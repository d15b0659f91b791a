"""What every request body model shares: strictness at the HTTP boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """A request body refuses unknown fields and coercions the client did not ask for: "10" or 10.5 for an
    integer, "0.5" or true for a number, 1 or "yes" for a boolean. An integer is still a number."""

    model_config = ConfigDict(extra="forbid", strict=True)
