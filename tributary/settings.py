"""One typed settings object for every process, read from TRIBUTARY_* variables and an optional file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["embedded", "command-api", "query-api", "applier", "projector"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRIBUTARY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path("./tributary-data"), description="Where embedded mode keeps everything"
    )
    storage_root: str | None = Field(
        default=None, description="DeepLake storage root URL; defaults to <data_dir>/datasets"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; defaults to SQLite under data_dir"
    )
    database_schema: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema to use (search_path)"
    )
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="tributary", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    command_partitions: int = Field(default=8, ge=1)
    command_part_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        le=32 * 1024 * 1024,
        description="Larger upserts are split into commands of at most this size, published in one "
        "transaction; keep it under the command topic's max.message.bytes",
    )
    topic_replication: int = Field(default=1, ge=1, description="Replication factor of topics we create")
    instance_id: str | None = Field(
        default=None,
        max_length=200,
        description="Stable name of this worker replica (Kafka static membership, e.g. a StatefulSet pod "
        "name): a restarted replica takes its partitions back at once instead of after a rebalance",
    )
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    default_tenant: str = "default"
    bounded_staleness_s: float = Field(
        default=1.0, gt=0, description="A `bounded` read may trail the event log by at most this long"
    )
    read_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest a read waits for its consistency level before a 504"
    )
    wait_timeout_s: float = Field(default=30.0, gt=0, description="Longest a ?wait=true write waits")
    openai_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the OpenAI-compatible embedding endpoints of datasets"
    )
    embed_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest one request to an embedding endpoint may take"
    )
    embed_batch_size: int = Field(
        default=256, ge=1, le=2048, description="Texts per request to an embedding endpoint"
    )

    @cached_property
    def resolved_storage_root(self) -> str:
        if self.storage_root:
            return self.storage_root.rstrip("/")
        return str((self.data_dir / "datasets").resolve())

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tributary.db').resolve()}"
