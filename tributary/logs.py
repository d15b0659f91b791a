"""Logging of every role: one JSON object a line (or a human-readable line on a terminal), with the context of the
request or message being handled, and a repeated line logged once with a count.

Every record goes through the standard library's logging (ours, uvicorn's, aiokafka's, grpcio's), so one handler
on the root logger renders them all, with structlog's `ProcessorFormatter`: `time` (UTC, ISO 8601), `level`,
`logger`, `message`, `role`, and what the context holds: `request_id` (bound per HTTP request or gRPC call by
`begin_request`), `trace_id` (of the current span, tributary/tracing.py; else of the request's `traceparent` header
or the worker's message), `tenant` and `dataset` (bound where a request's credential and dataset are known,
tributary/auth/gate.py, or a worker's message), `exception` (its traceback, one string).

With a dependency away, clients log the same failure many times a second (aiokafka's `Unable connect to node`).
The first occurrence of a line is logged at once; the same line again (same logger, level and text) within
`REPEAT_WINDOW_S` is counted, not logged, and the next one after the window carries the count.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time
import uuid
from collections.abc import Coroutine, Mapping, MutableMapping
from typing import Any, Literal, TypeVar

import structlog
from opentelemetry import context as otel_context
from pydantic import ValidationError
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars

from tributary import tracing
from tributary.auth.keys import KEY_PATTERN

REPEAT_WINDOW_S = 30.0
# Distinct lines remembered; past that the oldest are forgotten (they are then logged again once).
REMEMBERED = 1024

LogFormat = Literal["json", "console"]
T = TypeVar("T")

REQUEST_ID_HEADER = "x-request-id"
# A client's request id is kept when it is a plain token of reasonable length; anything else (spaces, quotes,
# control characters, a megabyte) is replaced, so what is logged and echoed is never the client's free text.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# W3C trace context: version-traceid-parentid-flags; an all-zero trace id is invalid.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
# A credential that reaches a log line anyway (in an exception's text, say) is cut down to what names it.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+")

_role = "cli"
FIRST = ("time", "level", "logger", "message", "role")


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self._window_s = window_s
        # line -> (when it was last logged, how many were held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        last, held = self._seen.get(key, (float("-inf"), 0))
        if now - last < self._window_s:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.getMessage()} (and {held} more times in the last {now - last:.0f} s)"
            record.args = None
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > REMEMBERED:
            del self._seen[next(iter(self._seen))]
        return True


def _add_role(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("role", _role)
    return event


def _add_trace_id(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # The span being recorded is the truth; what was bound from a header or an envelope stands without one.
    current = tracing.current_trace_id()
    if current is not None:
        event["trace_id"] = current
    return event


def redact(text: str) -> str:
    """`text` with API keys cut to their public prefix and bearer tokens removed."""
    text = KEY_PATTERN.sub(lambda key: f"trb_{key['prefix']}_[redacted]", text)
    return _BEARER.sub(r"\1 [redacted]", text)


def _first_the_usual(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # A reader (or a grep) finds the same fields at the start of every line; the context follows.
    return {name: event.pop(name) for name in FIRST if name in event} | dict(event)


def _redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in event.items():
        if isinstance(value, str):
            event[name] = redact(value)
    return event


def formatter(log_format: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: the record, its context, and the role, as one line."""
    rendering: list[structlog.typing.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # The traceback as one string field: a JSON line stays one line, and it is redacted like the rest.
        structlog.processors.format_exc_info,
    ]
    if log_format == "json":
        rendering += [
            structlog.processors.EventRenamer("message"),
            _redact,
            _first_the_usual,
            structlog.processors.JSONRenderer(),
        ]
    else:
        rendering += [_redact, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            _add_trace_id,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            _add_role,
            # What FastStream says of the message it handles.
            structlog.stdlib.ExtraAdder(allow=("topic", "group_id", "message_id")),
        ],
        processors=rendering,
    )


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is at each line: whoever swapped it for a while (a test runner, a CLI test's
    runner) and closed it afterwards does not leave a handler writing to a closed file."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _ignored: Any) -> None:
        pass


def configure(role: str, log_format: LogFormat) -> None:
    """Log INFO and above of every logger to stderr as `log_format` says, behind a RepeatFilter. Replaces what
    was configured before (uvicorn's worker processes call it again, and so do tests)."""
    global _role
    _role = role
    handler = _Stderr()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Alembic logs its plugins and every migration at INFO on each start: only its warnings are news.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def resolve_format(setting: Literal["auto", "json", "console"], role: str) -> LogFormat:
    """`auto`: a person at a terminal running embedded mode or a command reads lines; anything else (the
    distributed roles, output to a file or a collector) gets JSON."""
    if setting != "auto":
        return setting
    return "console" if role in ("embedded", "cli") and sys.stderr.isatty() else "json"


def request_id(given: str | None) -> str:
    """The client's request id when it is a sane token, else a new one."""
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, if it is a valid one."""
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower()) if traceparent else None
    if match is None or not match["trace"].strip("0"):
        return None
    return match["trace"]


def begin_request(headers: Mapping[str, str]) -> str:
    """Every line logged from here in this task (an HTTP request's, or a gRPC call's; `headers`: its headers or
    metadata, by lower-case name) carries the request id, and the trace id of its `traceparent` if valid. The
    context is the task's own: it is cleared first (nothing of a previous request), and not at the end, so an
    error handler outside the request's middleware still finds the id. Returns the id, to answer with."""
    request = request_id(headers.get(REQUEST_ID_HEADER))
    trace = trace_id(headers.get("traceparent"))
    clear_contextvars()
    bind_contextvars(request_id=request, **({"trace_id": trace} if trace else {}))
    return request


def begin_message(
    tenant: str | None = None, dataset: str | None = None, traceparent: str | None = None
) -> None:
    """Every line logged from here in this task is about one message (a worker's event), with what is known of
    it: its tenant, dataset and trace id (of the envelope's trace context)."""
    clear_contextvars()
    known = {"tenant": tenant, "dataset": dataset, "trace_id": trace_id(traceparent)}
    bind_contextvars(**{name: value for name, value in known.items() if value is not None})


def outside_requests() -> contextvars.Context:
    """A copy of the current context without the request's log fields and span, for a task that outlives the
    request."""
    context = contextvars.copy_context()
    context.run(clear_contextvars)
    context.run(otel_context.attach, otel_context.Context())
    return context


async def apart_from_request(work: Coroutine[Any, Any, T]) -> T:
    """Awaits `work` in a task whose context has none of the request's: what it starts outlives the request (a
    Kafka producer started by the first write, its background tasks), and its later lines are no request's."""
    return await asyncio.create_task(work, context=outside_requests())


def without_input(error: ValidationError) -> str:
    """What a validation error says, without the input it quotes (a command's or event's input holds vectors)."""
    problems = error.errors(include_input=False, include_url=False)
    return "; ".join(f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}" for p in problems)


def bind(**values: str) -> None:
    """Adds to the context of the request or message being handled (tenant, dataset)."""
    bind_contextvars(**values)


def current_request_id() -> str | None:
    found = get_contextvars().get("request_id")
    return found if isinstance(found, str) else None
