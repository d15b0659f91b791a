"""What every request body model shares: strictness at the HTTP boundary."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _integral_float(value: Any) -> Any:
    # JSON has one number type: 10.0 is the integer 10 (JSON Schema agrees), "10" is not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral_float)]


class RequestModel(BaseModel):
    """A request body refuses unknown fields and coercions the client did not ask for: "10" or 10.5 for an
    integer, "0.5" or true for a number, 1 or "yes" for a boolean. An integer is still a number."""

    model_config = ConfigDict(extra="forbid", strict=True)
