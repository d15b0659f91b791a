"""The HTTP metrics of every app (tributary/metrics.py): an ASGI middleware that counts and times each request
by its route template (`/api/v1/datasets/{dataset}/search`), method and status class. A path no route matched is
counted as `unmatched` (and an unknown method as `OTHER`), so scanners probing random paths cannot add series."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from tributary.http_hygiene import answered_status
from tributary.metrics import HTTP_DURATION, HTTP_REQUESTS

UNMATCHED = "unmatched"
# Any other method (a client may send any token) is counted as OTHER.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception that escapes the app becomes a 500 in Starlette's outermost middleware.
        status = 500
        try:
            status = await answered_status(self.app, scope, receive, send) or status
        finally:
            # The router put the matched route in the scope it was given: this one.
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
