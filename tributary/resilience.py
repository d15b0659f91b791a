"""Living with dependencies that go away: exponential backoff with jitter, a log that says a repeated error once
with a count, a circuit breaker with half-open probes, and supervised background tasks.

The breaker is written here rather than taken from `purgatory` or `aiobreaker`: one breaker must serve
SQLAlchemy's synchronous connect hook (PostgreSQL) as well as async calls (Redis, embedding endpoints), and
readiness and the 503 answers read its state (`retry_after_s`). `purgatory` keeps sync and async breakers in
separate factories, and `aiobreaker` (async only) has had no release since 2021.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from tributary.metrics import BREAKER_OPENS, BREAKER_STATE


class Unavailable(Exception):
    """A dependency does not answer: the HTTP roles answer 503 with `Retry-After`, the workers back off."""

    def __init__(
        self, dependency: str, reason: str, retry_after_s: float = 1.0, message: str | None = None
    ) -> None:
        super().__init__(message or f"{dependency} is unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason
        self.retry_after_s = retry_after_s


class Backoff:
    """Delays that double from `first_s` up to `cap_s`, each drawn between half and all of its step (jitter), so
    many clients retrying the same outage spread out."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 5.0) -> None:
        self._first_s, self._cap_s = first_s, cap_s
        self.attempts = 0

    def next_delay(self) -> float:
        step = min(self._cap_s, self._first_s * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return random.uniform(step / 2, step)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempts = 0


class RepeatedLog:
    """Logs a message the first time, then at most once per `every_s` with how often it came meanwhile, so an
    outage that fails every request or redelivery gives a few lines, not thousands. Messages are told apart by
    their format string; `resolved` says once that it stopped."""

    def __init__(
        self, logger: logging.Logger, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._log, self._every_s = logger, every_s
        # format string -> (when it was last written, occurrences since)
        self._seen: dict[str, tuple[float, int]] = {}

    def __call__(self, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        now = self._clock()
        last = self._seen.get(msg)
        if last is None:
            self._seen[msg] = (now, 0)
            self._log.log(level, msg, *args, exc_info=exc_info)
        elif now - last[0] >= self._every_s:
            self._seen[msg] = (now, 0)
            self._log.log(
                level,
                msg + " (%d more times in %.0f s)",
                *args,
                last[1] + 1,
                now - last[0],
                exc_info=exc_info,
            )
        else:
            self._seen[msg] = (last[0], last[1] + 1)

    def resolved(self, msg: str, recovered: str) -> None:
        """If `msg` was logged, say `recovered` once (with the count since the last line) and forget it."""
        last = self._seen.pop(msg, None)
        if last is not None:
            self._log.info("%s (after %d more failures)", recovered, last[1])


BreakerState = Literal["closed", "open", "half-open"]
# The values of tributary_circuit_breaker_state: the worse, the higher (a scrape of several processes takes the
# largest).
BREAKER_STATES: dict[BreakerState, int] = {"closed": 0, "half-open": 1, "open": 2}


class CircuitBreaker:
    """Closed: calls go through, and `failures` in a row open it. Open: calls fail at once with `Unavailable`
    for `reset_s`. Then half-open: one call at a time probes; its success closes the breaker, its failure opens
    it again. Not thread-safe: every user runs on one event loop."""

    def __init__(
        self,
        dependency: str,
        failures: int = 3,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.dependency = dependency
        self._threshold, self._reset_s = failures, reset_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_error = ""
        self._gauge = BREAKER_STATE.labels(dependency)
        self._gauge.set(BREAKER_STATES["closed"])

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self._reset_s else "open"

    @property
    def retry_after_s(self) -> float:
        if self._opened_at is None:
            return 1.0
        return max(1.0, self._reset_s - (self._clock() - self._opened_at))

    def before(self) -> None:
        """Raise `Unavailable` unless a call may go through now (closed, or the one probe of half-open)."""
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and not self._probing:
            self._probing = True
            self._gauge.set(BREAKER_STATES["half-open"])
            return
        raise Unavailable(self.dependency, self.last_error or "circuit open", self.retry_after_s)

    def succeeded(self) -> None:
        if self._opened_at is not None:
            self._gauge.set(BREAKER_STATES["closed"])
        self._failures, self._opened_at, self._probing = 0, None, False

    def failed(self, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            if self._opened_at is None:
                BREAKER_OPENS.labels(self.dependency).inc()
            self._opened_at = self._clock()
            self._gauge.set(BREAKER_STATES["open"])
        self._probing = False

    @contextmanager
    def guard(self, *counted: type[BaseException]) -> Iterator[None]:
        """Run the body through the breaker; an exception of the `counted` types is a failure (and re-raised),
        anything else, or none, a success: the dependency answered."""
        self.before()
        try:
            yield
        except counted as exc:
            self.failed(exc)
            raise
        except asyncio.CancelledError:
            self._probing = False
            raise
        except BaseException:
            self.succeeded()
            raise
        self.succeeded()


CANCEL_AGAIN_S = 1.0


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again each second it goes on. A cancellation can
    be lost inside a library that turns it into an error of its own (seen in CI: a periodic task's database
    round, cancelled at shutdown, ended in an ordinary exception; its `except Exception` logged it and slept until
    the next round), and one cancel would then leave the task, and whoever awaits it, running for ever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_S)
    if not task.cancelled():
        task.exception()  # retrieved: the task is over, however it ended


class Supervised:
    """A background task that must keep running: when it raises, it is logged, counted as failing (readiness
    says 503) and started again after a growing pause; once it runs again it counts as healthy."""

    def __init__(
        self, name: str, work: Callable[[], Awaitable[None]], logger: logging.Logger, cap_s: float = 30.0
    ) -> None:
        self.name = name
        self._work = work
        self._log = RepeatedLog(logger)
        self._backoff = Backoff(first_s=0.5, cap_s=cap_s)
        self._backoff_cap_s = cap_s
        self._task: asyncio.Task[None] | None = None
        self._crashed = False
        self.restarts = 0

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done() and not self._crashed

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None

    async def _supervise(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._work()
                return
            except Exception:
                if time.monotonic() - started > self._backoff_cap_s:
                    self._backoff.reset()  # it ran well for a while: this is a new failure, not the same one
                self._crashed = True
                self._log(logging.ERROR, "%s crashed; restarting it after a pause", self.name, exc_info=True)
            await self._backoff.sleep()
            self.restarts += 1
            self._crashed = False
