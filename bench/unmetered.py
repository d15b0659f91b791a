"""`python -m bench.unmetered serve ...`: `tributary` without the metrics of the search path, so that
bench/telemetry.py can measure what they cost. The metrics a search updates (tributary/metrics.py: HTTP and gRPC
requests and their durations, search cache hits and misses) are replaced by ones that do nothing before any module
imports them, and the HTTP middleware that counts and times each request (tributary/http_metrics.py) is left out.

A benchmark's tool, not a setting: an operator has no reason to run blind, only a benchmark to know the price.
"""

from __future__ import annotations

from typing import Any

from tributary import metrics

PER_SEARCH = (
    "HTTP_REQUESTS",
    "HTTP_DURATION",
    "GRPC_REQUESTS",
    "GRPC_DURATION",
    "SEARCH_CACHE_HITS",
    "SEARCH_CACHE_MISSES",
)


class Unmetered:
    """A counter or histogram that counts nothing."""

    def labels(self, *_values: str) -> Unmetered:
        return self

    def inc(self, _amount: float = 1) -> None:
        pass

    def observe(self, _value: float) -> None:
        pass


def without_middleware(app: Any) -> Any:
    return app


def main() -> None:
    for name in PER_SEARCH:
        setattr(metrics, name, Unmetered())
    # Imported only now, so that they (and what they import) take the metrics above by name.
    from entrypoints import cli, http_app

    http_app.HttpMetrics = without_middleware  # type: ignore[misc,assignment]
    cli.app(prog_name="tributary")


if __name__ == "__main__":
    main()
