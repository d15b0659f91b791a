"""Where the tests find Kafka, Redis and PostgreSQL.

In order: the TRIBUTARY_TEST_* variables (deploy/local/services.sh env prints them); else testcontainers when
a Docker engine answers; else the test fails under CI=true and skips with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

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
def kafka() -> Iterator[str]:
    if url := os.environ.get("TRIBUTARY_TEST_KAFKA_BOOTSTRAP"):
        yield url
        return
    if not docker_answers():
        unavailable("Kafka")
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
        yield container.get_bootstrap_server()


@contextlib.contextmanager
def redis() -> Iterator[str]:
    if url := os.environ.get("TRIBUTARY_TEST_REDIS_URL"):
        yield url
        return
    if not docker_answers():
        unavailable("Redis")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7") as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    if url := os.environ.get("TRIBUTARY_TEST_DATABASE_URL"):
        yield url
        return
    if not docker_answers():
        unavailable("PostgreSQL")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="asyncpg") as container:
        yield container.get_connection_url()
