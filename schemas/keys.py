"""Request and response models of API key management."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from events.names import Name
from schemas.requests import RequestModel
from tributary.auth.principal import Role


class CreateKey(RequestModel):
    tenant: Name
    roles: list[Role] = Field(min_length=1)
    datasets: list[Name] | None = Field(default=None, description="Limit the key to these datasets")


class CreatedKey(BaseModel):
    id: str
    key: str = Field(description="Shown this once; only its hash is kept")


class KeyView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str
    tenant: str
    roles: list[str]
    datasets: list[str] | None
    created_at: datetime
    revoked_at: datetime | None


class KeyList(BaseModel):
    keys: list[KeyView]
