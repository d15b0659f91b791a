"""The trace context of a message (tributary/tracing.py): what an envelope and its Kafka headers carry, how a
consumer continues it, one message at a time or in a batch, and that a process that records nothing passes it on
unchanged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags
from structlog.contextvars import clear_contextvars

from events import DeleteDataset, TraceContext
from tributary import logs, tracing
from tributary.logs import formatter

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-1bf7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"


def command(traceparent: str | None = None, tracestate: str | None = None) -> DeleteDataset:
    return DeleteDataset(
        tenant="t", dataset="d", trace=TraceContext(traceparent=traceparent, tracestate=tracestate)
    )


def only(finished: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    [found] = [span for span in finished if span.name == name]
    return found


def ids(context: SpanContext | None) -> tuple[int, int] | None:
    """What names a span, whether its context was made here or read from a message (`is_remote`)."""
    return None if context is None else (context.trace_id, context.span_id)


def test_a_message_carries_the_context_of_the_span_that_sent_it(spans: InMemorySpanExporter) -> None:
    with tracing.producing("publish", command()) as sending:
        sent = tracing.stamped(command())
    sender = sending.get_span_context()
    named = f"{trace.format_trace_id(sender.trace_id)}-{trace.format_span_id(sender.span_id)}"
    parent = f"00-{named}-{sender.trace_flags:02x}"
    assert sent.trace == TraceContext(traceparent=parent)
    assert tracing.headers(sent.trace) == {"traceparent": parent}
    # Its consumer continues that span.
    with tracing.continuing("apply", sent) as handling:
        pass
    [published, applied] = spans.get_finished_spans()
    assert published.name == "publish DeleteDataset" and published.kind == trace.SpanKind.PRODUCER
    assert applied.name == "apply DeleteDataset" and applied.kind == trace.SpanKind.CONSUMER
    assert ids(applied.parent) == ids(sender) and handling.get_span_context().trace_id == sender.trace_id
    assert applied.attributes is not None and applied.attributes["tributary.dataset"] == "d"


def test_tracestate_travels_with_the_traceparent_and_an_invalid_context_starts_a_new_trace(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.continuing("apply", command(SAMPLED, "vendor=opaque")):
        carried = tracing.trace_context()
    assert carried.tracestate == "vendor=opaque"
    assert tracing.headers(carried) == {"traceparent": carried.traceparent, "tracestate": "vendor=opaque"}
    for invalid in ("garbage", f"00-{'0' * 32}-b7ad6b7169203331-01"):
        with tracing.continuing("apply", command(invalid)):
            pass
    assert [span.parent for span in spans.get_finished_spans()[1:]] == [None, None]


def test_without_a_span_a_message_is_sent_as_it_is() -> None:
    sent = command()
    assert tracing.stamped(sent) is sent
    assert tracing.headers(sent.trace) == {}


def test_a_process_that_records_nothing_passes_the_context_on_unchanged() -> None:
    # No SDK installed (tracing off): the spans are the API's no-op ones, which keep their parent's context.
    received = command(SAMPLED, "vendor=opaque")
    [applied] = tracing.each_message("apply", [received], start_time=0)
    assert tracing.stamped(received, applied) is received
    with tracing.continuing("project", received):
        assert tracing.trace_context() == received.trace


def test_a_server_span_continues_the_clients_context_and_is_current_while_it_is_served(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.serving("POST", {"traceparent": SAMPLED, "tracestate": "vendor=opaque"}) as served:
        assert trace.get_current_span() is served
        assert tracing.trace_context().tracestate == "vendor=opaque"
    with tracing.serving("POST", {"traceparent": "garbage"}):
        pass
    continued, started = spans.get_finished_spans()
    assert continued.kind == trace.SpanKind.SERVER
    assert continued.parent is not None and continued.parent.is_remote
    assert trace.format_span_id(continued.parent.span_id) == SAMPLED.split("-")[2]
    assert started.parent is None
    # Nothing is said of a span but by its caller, and only of a recorded one.
    assert not continued.attributes and not started.attributes


def test_a_server_span_the_client_did_not_sample_is_not_recorded_but_carries_its_trace_on(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.serving("POST", {"traceparent": UNSAMPLED}) as served:
        assert not served.is_recording()
        carried = tracing.trace_context().traceparent
        assert carried is not None and carried.split("-")[1] == UNSAMPLED.split("-")[1]
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert spans.get_finished_spans() == ()


def test_tracing_off_serves_without_a_span() -> None:
    with tracing.serving("POST", {"traceparent": SAMPLED}) as served:
        assert served is trace.INVALID_SPAN
        assert tracing.trace_context() == TraceContext()


def test_a_batch_is_in_the_trace_of_its_first_sampled_message_and_linked_to_each(
    spans: InMemorySpanExporter,
) -> None:
    batch = [command(UNSAMPLED), command(), command(SAMPLED)]
    with tracing.batch("apply batch", batch, start_time=1) as applying:
        each = tracing.each_message("apply", batch, start_time=2, batch=applying)
    [batch_span] = [span for span in spans.get_finished_spans() if span.name == "apply batch"]
    contexts = [tracing.context_of(message.trace) for message in batch]
    unsampled, sampled = (trace.get_current_span(contexts[i]).get_span_context() for i in (0, 2))
    assert ids(batch_span.parent) == ids(sampled)
    assert [ids(link.context) for link in batch_span.links] == [ids(unsampled), ids(sampled)]
    assert batch_span.start_time == 1
    # Each message's span continues its own trace (the one without a context starts one) and links the batch.
    recorded = [span for span in spans.get_finished_spans() if span.name == "apply DeleteDataset"]
    assert [ids(span.parent) for span in recorded] == [None, ids(sampled)]
    assert all([ids(link.context) for link in span.links] == [ids(batch_span.context)] for span in recorded)
    assert all(span.start_time == 2 for span in recorded)
    # The first is not sampled (its parent was not): not recorded, but still its trace's context to pass on.
    assert not each[0].is_recording()
    assert each[0].get_span_context().trace_id == unsampled.trace_id


def test_a_batch_of_unsampled_messages_is_not_recorded(spans: InMemorySpanExporter) -> None:
    with tracing.batch(
        "apply batch", [command(UNSAMPLED), command(SAMPLED.replace("-01", "-00"))], start_time=1
    ):
        assert not trace.get_current_span().is_recording()
        assert trace.get_current_span().get_span_context().trace_flags == TraceFlags.DEFAULT
    assert spans.get_finished_spans() == ()


def test_a_line_logged_in_a_span_carries_its_trace_id(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("tributary.test", logging.INFO, __file__, 1, "applied", None, None)
    logs.begin_request({"traceparent": UNSAMPLED})
    try:
        with tracing.continuing("apply", command(SAMPLED)):
            line = formatter("json").format(record)
        outside = formatter("json").format(record)
    finally:
        clear_contextvars()
    # The span's trace, not the one bound from the request's header; outside the span, the bound one.
    assert '"trace_id": "0af7651916cd43dd8448eb211c80319c"' in line
    assert '"trace_id": "1bf7651916cd43dd8448eb211c80319c"' in outside


async def test_what_a_request_starts_to_outlive_it_is_in_none_of_its_spans(
    spans: InMemorySpanExporter,
) -> None:
    async def start_a_client() -> asyncio.Task[bool]:
        async def background() -> bool:
            return trace.get_current_span().get_span_context().is_valid

        return asyncio.create_task(background())

    with tracing.continuing("apply", command(SAMPLED)):
        outliving = await logs.apart_from_request(start_a_client())
        assert trace.get_current_span().get_span_context().is_valid
    assert await outliving is False
