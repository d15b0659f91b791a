"""The server span of each HTTP request when tracing is on (`tributary.tracing.serving`): the child of the client's
W3C `traceparent` when it sent a valid one, named by method and route template (`POST
/api/v1/datasets/{dataset}/vectors`), current while the request is handled, so what the request causes (its
command's publish span) is its child and its log lines carry its trace id. Probes and scrapes (`UNTRACED`) are
not traced.

Ours rather than FastAPI's native telemetry or opentelemetry-instrumentation-fastapi: both compute the request's
attributes (URL, query, server address, ...) for every request before the sampler runs, and cost 62 and 125 us
of CPU a request with 1% sampled, where this one cost 16 us in the same probe (docs/benchmarks.md; 8 us alone):
attributes are set only on a span that is recorded, and an unrecorded request is not watched for its status."""

from __future__ import annotations

from opentelemetry.trace import Span, StatusCode
from starlette.types import Receive, Scope, Send

from tributary import tracing
from tributary.http_hygiene import HttpMiddleware, answered_status
from tributary.http_metrics import METHODS

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
_CONTEXT_HEADERS = (b"traceparent", b"tracestate")


class HttpTracing(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        # A client may send any token as its method; the span's name keeps to the known ones (semconv: HTTP).
        method = scope["method"] if scope["method"] in METHODS else "HTTP"
        carried = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _CONTEXT_HEADERS
        }
        with tracing.serving(method, carried) as span:
            if not span.is_recording():
                await self.app(scope, receive, send)
                return
            await self._recorded(span, method, scope, receive, send)

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
