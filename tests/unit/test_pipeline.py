"""The applier's batch pipeline over a fake store (pure logic): what becomes a dead letter and why, how failed
deliveries are counted, and that a fence's refusal is not the batch's fault."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import workers.pipeline
from events import CommandRejected, DatasetDeleted, DeleteDataset, TraceContext, parse_event
from tributary import tracing
from tributary.deeplake_lib import deeplake
from tributary.resilience import Unavailable
from tributary.storage import DatasetStore
from workers.isolation import MAX_ATTEMPTS
from workers.pipeline import ApplierPipeline

Message = tuple[int, bytes]


class FakeStore:
    """Deletes datasets; deleting one of `crashing` raises, as a command that crashes the applier would, and one
    of `unreachable` raises DeepLake's error for a store that does not answer. Has no dataset to write vectors
    to."""

    def __init__(self, *crashing: str) -> None:
        self.crashing = set(crashing)
        self.unreachable: set[str] = set()
        self.deleted: list[str] = []
        self.threads: set[int] = set()

    def url(self, tenant: str, dataset: str) -> str:
        return f"{tenant}/{dataset}"

    def delete(self, tenant: str, dataset: str) -> None:
        self.threads.add(threading.get_ident())
        if dataset in self.crashing:
            raise RuntimeError(f"boom on {dataset}")
        if dataset in self.unreachable:
            raise deeplake.StorageNetworkConnectionError("[S3] Network connection error: curlCode: 7")
        self.deleted.append(dataset)

    def writer(self, tenant: str, dataset: str) -> None:
        return None

    def forget_all(self) -> None:
        pass


def delete(dataset: str) -> bytes:
    return DeleteDataset(tenant="t", dataset=dataset).model_dump_json().encode()


def batch(*bodies: bytes, first: int = 0) -> list[Message]:
    return [(first + index, body) for index, body in enumerate(bodies)]


def pipeline_over(store: FakeStore) -> ApplierPipeline[Message]:
    return ApplierPipeline[Message](
        cast(DatasetStore, store), body=lambda message: message[1], position=lambda message: message[0]
    )


GARBAGE = b'{"type": "DeleteDataset", "tenant": "t"}'
# A vector write to a dataset that does not exist: the applier rejects it.
MISSING = b'{"type": "DeleteVectors", "tenant": "t", "dataset": "nope", "payload": {"ids": ["x"]}}'


async def test_unreadable_and_rejected_commands_are_dead_lettered_with_their_reasons() -> None:
    store = FakeStore()
    messages = batch(delete("a"), GARBAGE, MISSING, delete("b"))
    settled = await pipeline_over(store).apply(messages)

    assert settled.messages == messages
    assert store.deleted == ["a", "b"]
    letters = [(letter.message[0], letter.reason) for letter in settled.dead_letters]
    assert [position for position, _ in letters] == [1, 2]
    assert letters[0][1].startswith("invalid command") and "dataset" in letters[0][1]
    assert letters[1][1] == "dataset 'nope' does not exist"
    # One event per readable command, in order, each serialised to what a consumer parses back.
    events = [encoded.event for encoded in settled.events]
    assert [type(event) for event in events] == [DatasetDeleted, CommandRejected, DatasetDeleted]
    assert [parse_event(encoded.body) for encoded in settled.events] == events


async def test_a_command_that_always_crashes_is_dead_lettered_after_max_attempts() -> None:
    store = FakeStore("bad")
    pipeline = pipeline_over(store)
    messages = batch(delete("bad"), first=7)
    # Alone in its batch, its crash looks like an outage: the batch is delivered again, and counted.
    for attempt in range(1, MAX_ATTEMPTS):
        with pytest.raises(RuntimeError, match="boom on bad"):
            await pipeline.apply(messages)
        assert pipeline.failures(messages) == attempt
    settled = await pipeline.apply(messages)

    assert [(letter.message[0], letter.reason) for letter in settled.dead_letters] == [
        (7, "the applier failed on this command: RuntimeError: boom on bad")
    ]
    assert [type(encoded.event) for encoded in settled.events] == [CommandRejected]
    # Settled: a later batch starting at the same position starts counting again.
    assert pipeline.failures(messages) == 0


async def test_a_crashing_command_among_others_is_dead_lettered_at_once() -> None:
    store = FakeStore("bad")
    pipeline = pipeline_over(store)
    settled = await pipeline.apply(batch(delete("a"), delete("bad"), delete("b")))
    assert [letter.message[0] for letter in settled.dead_letters] == [1]
    assert "RuntimeError: boom on bad" in settled.dead_letters[0].reason
    events = [type(encoded.event) for encoded in settled.events]
    assert events == [DatasetDeleted, CommandRejected, DatasetDeleted]


async def test_a_storage_outage_is_waited_out_however_long_it_lasts_and_dead_letters_nothing() -> None:
    store = FakeStore()
    store.unreachable.add("down")
    pipeline = pipeline_over(store)
    messages = batch(delete("a"), delete("down"), delete("b"))
    for _ in range(MAX_ATTEMPTS + 2):
        with pytest.raises(Unavailable, match="the dataset storage is unavailable"):
            await pipeline.apply(messages)
        assert pipeline.failures(messages) == 0
    store.unreachable.clear()
    settled = await pipeline.apply(messages)
    assert settled.dead_letters == []
    assert [type(encoded.event) for encoded in settled.events] == [DatasetDeleted] * 3


class Refused(Exception):
    pass


def refusing_fence() -> Callable[[], Any]:
    @asynccontextmanager
    async def fence() -> AsyncIterator[None]:
        raise Refused("not ours")
        yield

    return fence


async def test_a_refused_fence_applies_nothing_and_is_not_counted() -> None:
    store = FakeStore("bad")
    pipeline = pipeline_over(store)
    messages = batch(delete("bad"))
    for _ in range(MAX_ATTEMPTS + 1):
        with pytest.raises(Refused):
            await pipeline.apply(messages, refusing_fence())
    assert pipeline.failures(messages) == 0 and store.threads == set()
    # The crashing command still gets its deliveries before it is given up on.
    with pytest.raises(RuntimeError):
        await pipeline.apply(messages)
    assert pipeline.failures(messages) == 1


async def test_parsing_and_applying_run_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    parsing: set[int] = set()
    parse = workers.pipeline.parse_command

    def recording_parse(raw: bytes | str) -> Any:
        parsing.add(threading.get_ident())
        return parse(raw)

    monkeypatch.setattr(workers.pipeline, "parse_command", recording_parse)
    store = FakeStore()
    await pipeline_over(store).apply(batch(delete("a")))
    loop_thread = threading.get_ident()
    assert parsing and loop_thread not in parsing
    assert store.threads and loop_thread not in store.threads


async def test_each_event_carries_on_the_trace_of_its_command(spans: InMemorySpanExporter) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced = DeleteDataset(tenant="t", dataset="a", trace=TraceContext(traceparent=traceparent))
    settled = await pipeline_over(FakeStore()).apply(batch(traced.model_dump_json().encode(), delete("b")))

    finished = spans.get_finished_spans()
    [applying] = [span for span in finished if span.name == "apply batch"]
    applied = [span for span in finished if span.name == "apply DeleteDataset"]
    # The batch is in the traced command's trace; each command's span continues its own (the untraced one: a
    # new one), and the event it caused carries that span's context, serialised as published.
    assert applying.parent is not None and trace.format_span_id(applying.parent.span_id) == "b7ad6b7169203331"
    assert [span.parent.span_id if span.parent else None for span in applied] == [
        applying.parent.span_id,
        None,
    ]
    for encoded, span in zip(settled.events, applied, strict=True):
        assert span.context is not None
        carried = trace.get_current_span(tracing.context_of(encoded.event.trace)).get_span_context()
        assert (carried.trace_id, carried.span_id) == (span.context.trace_id, span.context.span_id)
        assert parse_event(encoded.body).trace == encoded.event.trace
