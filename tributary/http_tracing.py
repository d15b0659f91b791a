"""The server span of each HTTP request when tracing is on (tributary/tracing.py): the child of the client's W3C
`traceparent` when it sent a valid one, named by method and route template (`POST
/api/v1/datasets/{dataset}/vectors`), current while the request is handled, so what the request causes (its
command's publish span) is its child and its log lines carry its trace id. Probes and scrapes (`UNTRACED`) are
not traced.

Ours rather than FastAPI's native telemetry or opentelemetry-instrumentation-fastapi: both compute the request's
attributes (URL, query, server address, ...) for every request before the sampler runs, and cost 62 and 125 us
of CPU a request with 1% sampled, where this one costs 16 us (docs/benchmarks.md): attributes are set only on a
span that is recorded."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, TracerProvider
from starlette.types import ASGIApp, Receive, Scope, Send

from events import TraceContext
from tributary import tracing
from tributary.http_hygiene import HttpMiddleware, answered_status
from tributary.http_metrics import METHODS

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpTracing(HttpMiddleware):
    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        super().__init__(app)
        self._tracer = provider.get_tracer("tributary.http")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        # A client may send any token as its method; the span's name keeps to the known ones (semconv: HTTP).
        method = scope["method"] if scope["method"] in METHODS else "HTTP"
        span = self._tracer.start_span(method, context=_parent(scope), kind=SpanKind.SERVER)
        # Made current by hand rather than with `trace.use_span`: a request that is not sampled (99 in 100 at 1%)
        # pays for no more than starting the span and attaching it.
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            if not span.is_recording():
                await self.app(scope, receive, send)
                return
            await self._recorded(span, method, scope, receive, send)
        finally:
            otel_context.detach(token)
            span.end()

    async def _recorded(self, span: Span, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        # An exception that escapes the app becomes a 500 in Starlette's outermost middleware.
        status = 500
        try:
            status = await answered_status(self.app, scope, receive, send) or status
        except Exception as exc:
            span.record_exception(exc)
            raise
        finally:
            span.set_attributes(
                {
                    "http.request.method": method,
                    "url.path": scope["path"],
                    "url.scheme": scope.get("scheme", "http"),
                    "http.response.status_code": status,
                }
            )
            # The router put the matched route in the scope it was given: this one.
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            if status >= 500:
                span.set_status(StatusCode.ERROR)


def _parent(scope: Scope) -> Context:
    carried = {name: value for name, value in scope["headers"] if name in (b"traceparent", b"tracestate")}
    if b"traceparent" not in carried:
        return Context()
    return tracing.context_of(
        TraceContext(
            traceparent=carried[b"traceparent"].decode("latin-1"),
            tracestate=carried[b"tracestate"].decode("latin-1") if b"tracestate" in carried else None,
        )
    )
