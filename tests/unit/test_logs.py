"""A repeated log line is logged once, then with the count of the ones held back; reconnect backoff grows with
jitter up to its ceiling; a log line is one JSON object with its context, and holds no key and no vector."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.contextvars import clear_contextvars, get_contextvars

from events import parse_command
from tributary import logs
from tributary.auth.keys import new_key, parse
from tributary.kafka_backoff import FIRST_BACKOFF_S, MAX_BACKOFF_S, backoff_s
from tributary.logs import RepeatFilter


def record(message: str, *args: object, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, None)


def test_a_repeated_line_is_logged_once_then_with_its_count() -> None:
    repeats = RepeatFilter(window_s=0.05)
    line = "Unable connect to node with id %s: %s"
    assert repeats.filter(record(line, 1, "refused"))
    assert not any(repeats.filter(record(line, 1, "refused")) for _ in range(3))
    # Another text, level or logger is another line.
    assert repeats.filter(record(line, 2, "refused"))
    assert repeats.filter(record(line, 1, "refused", name="aiokafka.client"))
    time.sleep(0.1)
    after = record(line, 1, "refused")
    assert repeats.filter(after)
    assert after.getMessage().startswith(
        "Unable connect to node with id 1: refused (and 3 more times in the last"
    )
    # The count starts again.
    time.sleep(0.1)
    again = record(line, 1, "refused")
    assert repeats.filter(again) and again.getMessage() == "Unable connect to node with id 1: refused"


def test_reconnect_backoff_doubles_with_jitter_up_to_its_ceiling() -> None:
    for failures in range(1, 12):
        ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (failures - 1))
        assert all(ceiling / 2 <= backoff_s(failures) <= ceiling for _ in range(50))
    assert backoff_s(1000) <= MAX_BACKOFF_S


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`logs.configure` replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    clear_contextvars()


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_a_record_is_one_json_line_with_the_context_it_was_logged_in(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("query-api", "json")
    request = logs.begin_request({"x-request-id": "req-1", "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    logs.bind(tenant="acme", dataset="docs")
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        logging.getLogger("tributary.test").warning("held %d of %s", 3, "them", exc_info=True)
    [line] = logged(capsys)
    assert request == "req-1"
    assert list(line)[:5] == ["time", "level", "logger", "message", "role"]
    assert line["time"].endswith("Z") and line["level"] == "warning" and line["logger"] == "tributary.test"
    assert line["message"] == "held 3 of them" and line["role"] == "query-api"
    assert (line["request_id"], line["trace_id"], line["tenant"], line["dataset"]) == (
        "req-1",
        "ab" * 16,
        "acme",
        "docs",
    )
    assert "ValueError: first line\nsecond line" in line["exception"]
    # The next request starts from nothing: no tenant or dataset of the last one.
    logs.begin_request({})
    logging.getLogger("tributary.test").info("next")
    [line] = logged(capsys)
    assert len(line["request_id"]) == 32 and "tenant" not in line and "trace_id" not in line


def test_a_repeated_line_is_held_back_in_either_format(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for log_format in ("json", "console"):
        logs.configure("applier", log_format)
        for _ in range(5):
            logging.getLogger("aiokafka").error("Unable connect to node with id %s", 1)
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and "Unable connect to node with id 1" in lines[0], lines


def test_keys_and_bearer_tokens_never_reach_a_line(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    key = new_key().key
    parsed = parse(key)
    assert parsed is not None
    for log_format in ("json", "console"):
        logs.configure("command-api", log_format)
        logs.begin_request({})
        logs.bind(tenant=key)
        logging.getLogger("tributary.test").error(
            "refused %s and Authorization: Bearer eyJhbGc.eyJzdWIi.c2ln", key
        )
        out = capsys.readouterr().err
        assert parsed.secret not in out and "eyJhbGc" not in out, out
        assert f"trb_{parsed.prefix}_[redacted]" in out


def test_a_request_id_is_kept_only_when_it_is_a_sane_token() -> None:
    assert logs.request_id("9f1c-AB_x.y:z/+=") == "9f1c-AB_x.y:z/+="
    for insane in (None, "", "two words", "x" * 129, 'quote"d', "new\nline", "é"):
        made = logs.request_id(insane)
        assert made != insane and len(made) == 32


def test_the_trace_id_of_a_valid_traceparent() -> None:
    assert logs.trace_id(f"00-{'0af7651916cd43dd8448eb211c80319c'}-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    for invalid in (None, "", "garbage", f"00-{'0' * 32}-b7ad6b7169203331-01", "00-abc-def-01"):
        assert logs.trace_id(invalid) is None


def test_a_validation_error_is_told_without_its_input() -> None:
    command = {"type": "UpsertVectors", "tenant": "t", "payload": {"vectors": [[0.1357913, 0.2468024]]}}
    with pytest.raises(ValidationError) as invalid:
        parse_command(json.dumps(command))
    told = logs.without_input(invalid.value)
    assert "dataset" in told and "1357913" not in told and "2468024" not in told
    assert "1357913" in str(invalid.value)  # what pydantic's own text would have logged


async def test_what_a_request_starts_to_outlive_it_carries_none_of_its_context() -> None:
    logs.begin_request({"x-request-id": "req-2"})
    logs.bind(tenant="acme")

    async def start_a_client() -> asyncio.Task[dict[str, Any]]:
        async def background() -> dict[str, Any]:
            return get_contextvars()

        return asyncio.create_task(background())

    try:
        background = await logs.apart_from_request(start_a_client())
        assert await background == {}
        assert get_contextvars() == {"request_id": "req-2", "tenant": "acme"}
    finally:
        clear_contextvars()
