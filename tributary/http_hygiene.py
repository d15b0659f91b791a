"""What every HTTP answer carries: security headers, and CORS only for the origins the settings name; the
request body limit; and `answered_status`, for the middlewares that act on the status of an answer."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tributary.errors import error_response, problem
from tributary.settings import Settings

# An API that answers JSON: nothing in it is to be framed, sniffed, cached by intermediaries, or run as a page.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/docs", "/redoc"):
            # The interactive docs load their scripts from a CDN; the strict policy would blank them.
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in SECURITY_HEADERS if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


async def answered_status(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> int | None:
    """Run `app` on the request, passing its answer on; the status it answered with (None if it sent none)."""
    status: int | None = None

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    await app(scope, receive, watch)
    return status


class BodyLimit:
    """Refuses a body above `max_bytes`: at once when its Content-Length says so, else when reading passes the
    limit (Starlette's limiter, whose 413 then reaches the error handlers). Inside `SecurityHeaders`, so the
    413 has the error shape and headers of every other answer (FastAPI's own `max_body_size` answers in plain
    text from outside every middleware)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = RequestBodyLimitMiddleware(app, max_body_size=max_bytes)
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length", "")
            # ASCII digits only: "²" is a digit to str.isdigit() and not to int().
            if length.isascii() and length.isdigit() and int(length) > self.max_bytes:
                message = f"a request body may hold {self.max_bytes} bytes"
                await error_response(413, [problem(413, message)])(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def server_error(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette answers an unhandled error outside every middleware, so the headers are added here; it re-raises
    # the exception afterwards, so the server logs it with its traceback.
    answer = error_response(500, [problem(500, "internal error; it was logged")])
    answer.headers.update({name.decode(): value.decode() for name, value in SECURITY_HEADERS})
    return answer


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(status.HTTP_500_INTERNAL_SERVER_ERROR, server_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
        )
