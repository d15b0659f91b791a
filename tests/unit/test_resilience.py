from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from events.commands import OpenAIEmbedderConfig
from tests.clock import FakeClock
from tributary.embedding import EmbeddingFailed
from tributary.embedding.openai import OpenAIEmbedder
from tributary.resilience import Backoff, CircuitBreaker, RepeatedLog, Unavailable, cancel
from tributary.settings import EmbeddingEndpoint


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(first_s=0.1, cap_s=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for step, delay in zip([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0], delays, strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_a_repeated_message_is_logged_once_then_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.repeated")
    clock = FakeClock()
    repeated = RepeatedLog(logger, every_s=30, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.repeated"):
        for i in range(100):
            repeated(logging.WARNING, "down: %s", i)
        clock.advance(30)
        repeated(logging.WARNING, "down: %s", "again")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "down: 0"
    assert messages[1].startswith("down: again (100 more times in")
    assert len(messages) == 2


def test_the_breaker_opens_after_failures_in_a_row_and_a_half_open_probe_closes_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("thing", failures=2, reset_s=5, clock=clock)
    for _ in range(2):
        with pytest.raises(OSError), breaker.guard(OSError):
            raise OSError("refused")
    assert breaker.state == "open"
    with pytest.raises(Unavailable, match="thing is unavailable: refused"):
        breaker.before()
    clock.advance(5)
    breaker.before()  # the one probe
    with pytest.raises(Unavailable):
        breaker.before()  # no second probe at the same time
    breaker.succeeded()
    assert breaker.state == "closed"


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("thing", failures=1, reset_s=5, clock=clock)
    breaker.failed(OSError("refused"))
    clock.advance(5)
    with pytest.raises(OSError), breaker.guard(OSError):
        raise OSError("still refused")
    assert breaker.state == "open"


def test_the_breaker_state_and_its_openings_are_metrics() -> None:
    def state() -> float | None:
        return REGISTRY.get_sample_value("tributary_circuit_breaker_state", {"dependency": "metered"})

    def opens() -> float:
        found = REGISTRY.get_sample_value("tributary_circuit_breaker_opens_total", {"dependency": "metered"})
        return found or 0.0

    clock = FakeClock()
    breaker = CircuitBreaker("metered", failures=1, reset_s=5, clock=clock)
    opened_before = opens()
    assert state() == 0
    breaker.failed(OSError("refused"))
    assert (state(), opens()) == (2, opened_before + 1)
    clock.advance(5)
    breaker.before()
    assert state() == 1  # probing
    breaker.failed(OSError("still refused"))
    assert (state(), opens()) == (2, opened_before + 1)  # opened again from half-open: not a new opening
    clock.advance(5)
    breaker.before()
    breaker.succeeded()
    assert state() == 0


async def test_an_unreachable_embedding_endpoint_is_not_asked_while_the_breaker_is_open() -> None:
    config = OpenAIEmbedderConfig(model="m", endpoint="local")
    endpoint = EmbeddingEndpoint(url="http://127.0.0.1:1/v1", api_key=SecretStr("k"), allow_private=True)
    embedder = OpenAIEmbedder(config, 2, name="local", endpoint=endpoint, timeout=1.0, batch_size=8)
    try:
        for _ in range(3):
            with pytest.raises(EmbeddingFailed, match="cannot reach"):
                await embedder.embed(["a"])
        with pytest.raises(Unavailable, match=r"the embedding endpoint 'local' is unavailable"):
            await embedder.embed(["a"])
    finally:
        await embedder.aclose()


async def test_a_task_that_loses_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    rounds = 0

    async def periodic() -> None:
        """A periodic round whose library turns the cancellation into an error of its own, caught as any
        other failed round."""
        nonlocal rounds
        while True:
            rounds += 1
            try:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    raise RuntimeError("connection was closed in the middle of operation") from None
            except RuntimeError:
                pass
            await asyncio.sleep(3600)

    task = asyncio.create_task(periodic())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel(task), timeout=60)
    assert task.cancelled() and rounds == 1
