"""Where the tests find Kafka, Redis, PostgreSQL, Prometheus and an S3-compatible store.

In order: the TRIBUTARY_TEST_* variables (deploy/local/services.sh env prints them); else testcontainers when
a Docker engine answers (not for Prometheus and S3); else the test fails under CI=true and skips with the reason
elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(service: str) -> NoReturn:
    reason = (
        f"{service} is not available: set TRIBUTARY_TEST_* (see `deploy/local/services.sh env`) "
        "or make a Docker engine reachable"
    )
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _service(name: str, variable: str, container: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    if url := os.environ.get(variable):
        yield url
        return
    if not docker_answers():
        unavailable(name)
    with container() as url:
        yield url


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
        yield container.get_bootstrap_server()


@contextlib.contextmanager
def _redis_container() -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7") as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


@contextlib.contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="asyncpg") as container:
        yield container.get_connection_url()


def kafka() -> AbstractContextManager[str]:
    return _service("Kafka", "TRIBUTARY_TEST_KAFKA_BOOTSTRAP", _kafka_container)


def redis() -> AbstractContextManager[str]:
    return _service("Redis", "TRIBUTARY_TEST_REDIS_URL", _redis_container)


def postgres() -> AbstractContextManager[str]:
    return _service("PostgreSQL", "TRIBUTARY_TEST_DATABASE_URL", _postgres_container)


@dataclass(frozen=True)
class Prometheus:
    """The Prometheus deploy/local/services.sh runs: its HTTP API, and the folder whose JSON files list the
    targets it scrapes (file-based service discovery)."""

    url: str
    targets: Path


def prometheus() -> Prometheus:
    """The Prometheus of TRIBUTARY_TEST_PROMETHEUS_URL and _TARGETS, once it answers (no container fallback)."""
    url, targets = (os.environ.get(f"TRIBUTARY_TEST_PROMETHEUS_{name}") for name in ("URL", "TARGETS"))
    if not url or not targets:
        unavailable("Prometheus")
    try:
        httpx.get(f"{url}/-/ready", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        reason = f"Prometheus at {url} does not answer ({exc}): `deploy/local/services.sh up prometheus`"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return Prometheus(url, Path(targets))


@dataclass(frozen=True)
class S3Service:
    """An S3-compatible store and the credential it accepts (S3Proxy from `deploy/local/services.sh up s3`)."""

    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str


def s3() -> S3Service:
    """There is no container fallback: S3Proxy is a Java jar that `deploy/local/services.sh up s3` runs."""
    endpoint = os.environ.get("TRIBUTARY_TEST_S3_ENDPOINT")
    if not endpoint:
        reason = "S3 is not available: set TRIBUTARY_TEST_S3_* (`deploy/local/services.sh up s3`, then `env`)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return S3Service(
        endpoint=endpoint,
        bucket=os.environ.get("TRIBUTARY_TEST_S3_BUCKET", "tributary"),
        access_key_id=os.environ.get("TRIBUTARY_TEST_S3_ACCESS_KEY_ID", ""),
        secret_access_key=os.environ.get("TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY", ""),
    )
