"""Python client for Tributary: `Tributary` (blocking) and `AsyncTributary`, the same calls on both."""

from tributary_client import errors, models
from tributary_client._wire import Retries
from tributary_client.aio import AsyncTributary, IngestReport
from tributary_client.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    TributaryError,
    Unauthorized,
    Unavailable,
)
from tributary_client.sync import Tributary

__all__ = [
    "ApiError",
    "AsyncTributary",
    "Conflict",
    "Forbidden",
    "IngestReport",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "Retries",
    "Tributary",
    "TributaryError",
    "Unauthorized",
    "Unavailable",
    "errors",
    "models",
]
