"""Distributed traces with OpenTelemetry: one write is one trace, from the HTTP request or gRPC call through the
command API, the command log, the applier, the projector and every query replica to the domain event a stream
consumer reads.

The W3C trace context crosses each hop in the envelope's `trace` field (`events.TraceContext`: `traceparent`,
`tracestate`), which both transports carry; on Kafka it is also in the message's `traceparent` and `tracestate`
headers, for tools that read headers. Consumers continue the trace from the envelope.

This module uses the OpenTelemetry API only. The composition root installs the SDK when the `OTEL_*` variables
ask for an exporter (`entrypoints/bootstrap.configure_tracing`); until then every span here is the API's
no-op span, which records nothing and passes the context it was given on unchanged, so a trace started upstream
still reaches the next hop through a process that does not record.

Batches: the applier applies up to `COMMAND_BATCH` commands of many writes together, and a query replica applies
the events of a fetch together. Each message gets a span of its own that continues its trace (the child of
the message's context, timed as the batch it was applied in): that keeps every write's trace one chain, and
it is the context the message's own consequences carry on (a command's domain event). The applier's batch has
one span more, `apply batch`, linked to every command's context and the child of the first one that is
sampled (so a sampled write finds its batch in its own trace); each command's span links to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from events import Envelope, TraceContext

E = TypeVar("E", bound=Envelope)

_W3C = TraceContextTextMapPropagator()
_NO_TRACE = TraceContext()
_NOT_SERVED = nullcontext(trace.INVALID_SPAN)

_provider: TracerProvider | None = None
_tracer: Tracer = trace.NoOpTracer()


def install(provider: TracerProvider | None) -> None:
    """Record Tributary's spans with `provider` from now on (None: record none). The composition root calls it
    once per process; a test calls it around itself."""
    global _provider, _tracer
    _provider = provider
    _tracer = trace.NoOpTracer() if provider is None else provider.get_tracer("tributary")


def provider() -> TracerProvider | None:
    """The provider spans are recorded with, for the HTTP and gRPC instrumentation; None when tracing is off."""
    return _provider


def trace_context(span: Span | None = None) -> TraceContext:
    """The W3C context of `span` (default: the current one), as an envelope carries it."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span) if span is not None else None)
    if "traceparent" not in carrier:
        return _NO_TRACE
    return TraceContext(traceparent=carrier["traceparent"], tracestate=carrier.get("tracestate"))


def context_of(carried: TraceContext) -> Context:
    """The context a message carries, to continue its trace; an empty one (a new trace) when it carries none or
    an invalid one."""
    if carried.traceparent is None:
        return Context()
    carrier = {"traceparent": carried.traceparent}
    if carried.tracestate:
        carrier["tracestate"] = carried.tracestate
    return _W3C.extract(carrier, Context())


def headers(carried: TraceContext) -> dict[str, str]:
    """The Kafka headers of a message that carries `carried`."""
    return {name: value for name, value in carried.model_dump().items() if value}


def stamped(envelope: E, span: Span | None = None) -> E:
    """`envelope` carrying the context of `span` (default: the current one); as it is when there is none or it
    carries that one already."""
    carried = trace_context(span)
    if carried in (_NO_TRACE, envelope.trace):
        return envelope
    return envelope.model_copy(update={"trace": carried})


def about(envelope: Envelope) -> dict[str, str]:
    """What a span of handling `envelope` says of it."""
    return {
        "tributary.tenant": envelope.tenant,
        "tributary.dataset": envelope.dataset,
        "tributary.message_id": str(envelope.id),
        "tributary.operation": str(envelope.operation),
    }


def serving(name: str, headers: Mapping[str, str]) -> AbstractContextManager[Span]:
    """The server span of one HTTP request or gRPC call, current while the block runs: the child of the W3C
    context in `headers` (its `traceparent` and `tracestate`, by lower-case name) when the client sent a valid
    one, else a new trace. When tracing is off, none (the invalid span, at the cost of a shared null context):
    the client's context goes no further.

    It carries no attributes: the caller sets them only when `is_recording()`, so a request that is not sampled
    (99 in 100 at 1%) pays for starting the span and attaching it and nothing more (about 8 us of CPU,
    `python -m bench.telemetry --components`). Neither does it record exceptions: what is an error depends on
    the protocol."""
    if _provider is None:
        return _NOT_SERVED
    return _served(name, headers)


@contextmanager
def _served(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    parent = _W3C.extract(headers, Context()) if "traceparent" in headers else Context()
    span = _tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


@contextmanager
def producing(verb: str, envelope: Envelope) -> Iterator[Span]:
    """The span of sending `envelope`, the child of the current one and current while the block runs (an
    exception is recorded on it): `stamped` inside it gives the envelope to send."""
    with _tracer.start_as_current_span(
        f"{verb} {envelope.type}", kind=SpanKind.PRODUCER, attributes=about(envelope)
    ) as current:
        yield current


@contextmanager
def continuing(verb: str, envelope: Envelope) -> Iterator[Span]:
    """The span of handling one message, continuing the trace it carries, current while the block runs."""
    with _tracer.start_as_current_span(
        f"{verb} {envelope.type}",
        context=context_of(envelope.trace),
        kind=SpanKind.CONSUMER,
        attributes=about(envelope),
    ) as current:
        yield current


@contextmanager
def batch(
    name: str, envelopes: Sequence[Envelope], *, start_time: int, attributes: Attributes = None
) -> Iterator[Span]:
    """The span of handling a batch of messages, current while the block runs: linked to each message's
    context, and the child of the first sampled one (else of the first one; else a new trace)."""
    contexts = [context_of(envelope.trace) for envelope in envelopes]
    spans = [trace.get_current_span(c).get_span_context() for c in contexts]
    valid = [(c, s) for c, s in zip(contexts, spans, strict=True) if s.is_valid]
    parent = next((c for c, s in valid if s.trace_flags.sampled), valid[0][0] if valid else Context())
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(s) for _, s in valid],
        start_time=start_time,
        attributes=attributes,
    ) as current:
        yield current


def each_message(
    verb: str, envelopes: Sequence[Envelope], *, start_time: int, batch: Span | None = None
) -> list[Span]:
    """One ended span per message of a batch, continuing the message's trace, from `start_time` to now (the
    time its batch took), linked to the batch's span if it has one."""
    links = [Link(batch.get_span_context())] if batch is not None and batch.is_recording() else None
    end_time = time.time_ns()
    spans = []
    for envelope in envelopes:
        started = _tracer.start_span(
            f"{verb} {envelope.type}",
            context=context_of(envelope.trace),
            kind=SpanKind.CONSUMER,
            links=links,
            start_time=start_time,
            attributes=about(envelope),
        )
        started.end(end_time)
        spans.append(started)
    return spans


def current_trace_id() -> str | None:
    """The trace id of the current span, as 32 hex digits, if there is one."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None
