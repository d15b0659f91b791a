"""One typed settings object for every process, read from TRIBUTARY_* variables and an optional file."""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.names import Name
from tributary.auth import keys
from tributary.limits import MAX_MESSAGE_BYTES


class OutboundPlace(BaseModel):
    """A place outside the server that the operator lets it call: the allow-list entry of an embedding endpoint
    or of an image source. The server calls no URL that is not under one (tributary/outbound.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # No query, fragment or user info: the path is the operator's.
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$", max_length=2048)]
    allow_private: bool = Field(
        default=False,
        description="The place may resolve to a loopback, link-local or private address (a server on the "
        "operator's own network); without it such an address is refused at every call",
    )


class EmbeddingEndpoint(OutboundPlace):
    """An OpenAI-compatible endpoint (`POST {url}/embeddings`) that the operator lets datasets use. Datasets name
    it; they never give a URL, so the server only ever calls, with a key, the places listed here."""

    api_key: SecretStr = Field(description="Sent as the bearer key to this endpoint only")


class ImageSource(OutboundPlace):
    """Where the server may fetch an image a record or a query names by URL: any URL under `url` (the same
    scheme and host, and a path below its path)."""


# What runs the local embedding model (tributary/embedding/local.py).
LocalRuntime = Literal["onnx", "sentence-transformers"]
# The roles a process runs as (`tributary serve --role`): the HTTP ones, which serve the API, and the Kafka workers.
ApiRole = Literal["embedded", "command-api", "query-api"]
WorkerRole = Literal["applier", "projector"]
Role = Literal[ApiRole, WorkerRole]
JwtAlgorithm = Literal["HS256", "RS256", "ES256"]
# RFC 7518 3.2: an HMAC key at least as long as the hash output.
JWT_SECRET_MIN_BYTES = 32
# AES-256.
BACKUP_KEY_BYTES = 32


def _base64_bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return b""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRIBUTARY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Errors name the setting and the reason but never echo the value: it may be a key, a secret or a URL
        # with a password.
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(
        default=Path("./tributary-data"), description="Where embedded mode keeps everything"
    )
    storage_root: str | None = Field(
        default=None,
        # TRIBUTARY_STORAGE_URL is the name the data-safety issue gave it (s3://bucket/prefix): both are read.
        validation_alias=AliasChoices("storage_root", "TRIBUTARY_STORAGE_ROOT", "TRIBUTARY_STORAGE_URL"),
        description="DeepLake storage root URL: a folder, or s3://bucket/prefix with the standard AWS variables "
        "(TRIBUTARY_STORAGE_ROOT or TRIBUTARY_STORAGE_URL); defaults to <data_dir>/datasets",
    )
    backup_url: str | None = Field(
        default=None,
        description="Where snapshots are kept: a folder, or s3://bucket/prefix (credentials from the standard AWS "
        "chain: AWS_* variables, shared files, an instance or pod role); defaults to <data_dir>/backups",
    )
    backup_s3_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+/?$",
        description="An S3-compatible endpoint (S3Proxy, MinIO) for an s3:// backup_url; unset: AWS",
    )
    backup_s3_region: str | None = Field(
        default=None, max_length=64, description="Region of the backup bucket"
    )
    backup_encryption_key: SecretStr | None = Field(
        default=None,
        description="Seal every snapshot object with AES-256-GCM under this key (32 bytes, base64) before it "
        "leaves the process; unset: stored as they are",
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
        le=MAX_MESSAGE_BYTES,
        description="Larger upserts are split into commands of at most this size, published in one "
        "transaction; at most the command topic's max.message.bytes",
    )
    topic_replication: int = Field(default=1, ge=1, description="Replication factor of topics we create")
    instance_id: str | None = Field(
        default=None,
        max_length=200,
        description="Stable name of this worker replica (Kafka static membership, e.g. a StatefulSet pod "
        "name): a restarted replica takes its partitions back at once instead of after a rebalance",
    )
    redis_url: str | None = None
    redis_timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="Longest a Redis call (search cache, rate limits) may take before the request goes on without "
        "it: uncached, or as `rate_limit_fail_open` says. 50 ms tripped on a healthy but busy Redis",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    grpc_port: int = Field(
        default=50051,
        ge=0,
        le=65535,
        description="Port of the gRPC API (protos/tributary/v1/tributary.proto) beside the HTTP one, in embedded "
        "mode and the command-api and query-api roles (`--grpc-port` of `tributary serve`); 0: no gRPC server",
    )
    health_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the applier's and projector's /healthz and /readyz (`--port` of `tributary serve`); "
        "unset: none",
    )
    access_log: bool = Field(
        default=False,
        description="Log a line per HTTP request. Off by default: at a thousand searches a second it costs a query "
        "process about 7% of its CPU, and writes, key changes and refusals are in the audit either way",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines as JSON objects (one a line) or for a person (console); auto: console for embedded "
        "mode and the other commands when stderr is a terminal, JSON otherwise (the distributed roles always)",
    )
    default_tenant: str = "default"
    bounded_staleness_s: float = Field(
        default=1.0, gt=0, description="A `bounded` read may trail the event log by at most this long"
    )
    read_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest a read waits for its consistency level before a 504"
    )
    past_versions_memory_bytes: int = Field(
        default=1024**3,
        ge=0,
        description="Memory a query replica gives the datasets it holds at past versions (reads with "
        "`version`); the least recently read are dropped beyond it and loaded again when next read",
    )
    graph_save_min_vectors: int = Field(
        default=5000,
        ge=0,
        description="A query replica that stops saves the HNSW graphs of the datasets with at least this many "
        "indexed vectors under <data_dir>/graphs, and reuses them when it starts, instead of inserting every "
        "vector again; smaller datasets are rebuilt at each start",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (CORS); none by default"
    )
    max_body_bytes: int = Field(
        # As large as the largest command: a body is split into commands anyway, so this bounds the memory a
        # request takes, not what Kafka accepts.
        default=MAX_MESSAGE_BYTES,
        ge=1024,
        description="Largest request body any route accepts (413 above)",
    )
    wait_timeout_s: float = Field(default=30.0, gt=0, description="Longest a ?wait=true write waits")
    kafka_publish_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest a write's publish to Kafka may take; past it the write answers 503 with Retry-After",
    )
    operation_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long an operation's status, and the Idempotency-Key that made it, are kept after its last "
        "change; a request with that key afterwards is not matched to the first answer",
    )
    snapshot_schedule_poll_s: float = Field(
        default=10.0,
        gt=0,
        description="How often the command API looks for datasets whose scheduled snapshot is due (a snapshot is "
        "taken at most this late)",
    )
    embedding_endpoints: dict[Name, EmbeddingEndpoint] = Field(
        default_factory=dict,
        description="The OpenAI-compatible embedding endpoints a dataset may name, by name, each with its URL and "
        'key; as JSON: {"openai": {"url": "https://api.openai.com/v1", "api_key": "sk-..."}}',
    )
    embed_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest one request to an embedding endpoint may take"
    )
    image_sources: dict[Name, ImageSource] = Field(
        default_factory=dict,
        description="Where images given by URL may be fetched from, by name (any URL under one of them); as JSON: "
        '{"assets": {"url": "https://assets.example.com/images/"}}; none: images are sent as bytes only',
    )
    image_fetch_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest the fetch of one image given by URL may take"
    )
    embed_batch_size: int = Field(
        default=256, ge=1, le=2048, description="Texts per request to an embedding endpoint"
    )
    local_embedder_runtime: LocalRuntime = Field(
        default="onnx",
        description="What runs the local model: ONNX Runtime (the embed-local extra) or sentence-transformers "
        "(the embed-st extra, which brings torch); their vectors agree to a cosine of 0.999",
    )

    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key of the default tenant, in the trb_<prefix>_<secret> format "
        "(tributary.auth.keys.new_key makes one); unset, one is made at the first start and shown once (printed on a "
        "terminal, else written to <data_dir>/admin-key)",
    )
    key_cache_ttl_s: float = Field(
        default=0.5,
        ge=0,
        description="How long a replica trusts an API key it verified; a revoked key is refused by every replica "
        "within this (0: look the key up on every request)",
    )
    key_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="While the database does not answer, an API key verified within this long before is still "
        "accepted (reads served from memory go on); other keys get 503",
    )
    jwt_algorithm: JwtAlgorithm | None = Field(
        default=None,
        description="Accept JWTs signed with this algorithm and no other (whatever the token's header says); "
        "unset: JWTs are not accepted",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description=f"HS256 shared secret, at least {JWT_SECRET_MIN_BYTES} bytes"
    )
    jwt_jwks: str | None = Field(
        default=None, description="RS256/ES256 public keys: a JWKS file path or an http(s) URL"
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of accepted JWTs")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of accepted JWTs")
    jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed when checking `exp` and `nbf`"
    )
    jwt_tenant_claim: str = Field(default="tenant", min_length=1, description="Claim naming the tenant")
    jwt_roles_claim: str = Field(
        default="roles", min_length=1, description="Claim listing the roles (admin, writer, reader)"
    )
    jwt_datasets_claim: str = Field(
        default="datasets", min_length=1, description="Claim listing allowed datasets; absent: all of them"
    )
    rate_limit_enabled: bool = Field(
        default=True, description="Rate-limit requests in Redis (needs redis_url)"
    )
    # Defaults stop a runaway client, not normal use: a tenant may use about what one query process serves on two
    # cores (docs/benchmarks.md), and a write request carries up to 10,000 vectors.
    rate_limit_key_reads_per_s: float = Field(default=1000.0, gt=0, description="Reads a second per API key")
    rate_limit_key_reads_burst: int = Field(default=2000, ge=1)
    rate_limit_key_writes_per_s: float = Field(
        default=50.0, gt=0, description="Write requests a second per API key"
    )
    rate_limit_key_writes_burst: int = Field(default=100, ge=1)
    rate_limit_tenant_reads_per_s: float = Field(
        default=2000.0, gt=0, description="Reads a second per tenant"
    )
    rate_limit_tenant_reads_burst: int = Field(default=4000, ge=1)
    rate_limit_tenant_writes_per_s: float = Field(
        default=200.0, gt=0, description="Write requests a second per tenant"
    )
    rate_limit_tenant_writes_burst: int = Field(default=400, ge=1)
    rate_limit_unauthenticated_per_s: float = Field(
        default=5.0,
        gt=0,
        description="Requests a second, per client address, that fail authentication (401) before the address "
        "gets 429s instead",
    )
    rate_limit_unauthenticated_burst: int = Field(default=50, ge=1)
    rate_limit_fail_open: bool = Field(
        default=True,
        description="When Redis does not answer: let requests through (true) or refuse them (false); "
        "logged either way",
    )

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        # The format guarantees a 256-bit secret, so the bootstrap key is checked like every other key.
        if value is not None and keys.parse(value.get_secret_value()) is None:
            raise ValueError(
                "must be an API key in the trb_<prefix>_<secret> format (make one with: python -c "
                "'from tributary.auth.keys import new_key; print(new_key().key)'; in embedded mode, leave it "
                "unset to have one made and shown at the first start)"
            )
        return value

    @field_validator("backup_encryption_key")
    @classmethod
    def _backup_key_is_256_bits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(_base64_bytes(value.get_secret_value())) != BACKUP_KEY_BYTES:
            raise ValueError(
                f"must be {BACKUP_KEY_BYTES} random bytes in base64 (make one with: python -c "
                "'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
            )
        return value

    @model_validator(mode="after")
    def _jwt_is_complete(self) -> Settings:
        if self.jwt_algorithm is None:
            # Keys without an algorithm would silently turn JWTs off: say so instead.
            if self.jwt_secret is not None or self.jwt_jwks is not None:
                raise ValueError("jwt_secret and jwt_jwks need jwt_algorithm")
            return self
        if self.jwt_issuer is None or self.jwt_audience is None:
            raise ValueError("jwt_algorithm needs jwt_issuer and jwt_audience")
        if self.jwt_algorithm == "HS256":
            if self.jwt_secret is None or self.jwt_jwks is not None:
                raise ValueError("HS256 needs jwt_secret and no jwt_jwks")
            if len(self.jwt_secret.get_secret_value().encode()) < JWT_SECRET_MIN_BYTES:
                raise ValueError(f"jwt_secret must be at least {JWT_SECRET_MIN_BYTES} bytes")
        elif self.jwt_jwks is None or self.jwt_secret is not None:
            # A shared secret next to public keys is the algorithm-confusion setup: refuse it outright.
            raise ValueError(f"{self.jwt_algorithm} needs jwt_jwks and no jwt_secret")
        return self

    @cached_property
    def resolved_storage_root(self) -> str:
        if self.storage_root:
            return self.storage_root.rstrip("/")
        return str((self.data_dir / "datasets").resolve())

    @cached_property
    def resolved_backup_url(self) -> str:
        if self.backup_url:
            return self.backup_url.rstrip("/")
        return str((self.data_dir / "backups").resolve())

    @property
    def backup_encryption_key_bytes(self) -> bytes | None:
        key = self.backup_encryption_key
        return None if key is None else _base64_bytes(key.get_secret_value())

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tributary.db').resolve()}"
