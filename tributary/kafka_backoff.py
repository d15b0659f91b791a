"""Exponential backoff with jitter between failed metadata updates of every aiokafka client in the process.

With the broker away, aiokafka 0.14 refreshes metadata again as soon as a refresh fails: a producer with a batch
for a partition without a leader, a fetcher, a connection that closes each ask for one at once, and the
refresh task has no pause of its own. One process spun at 90% of a core logging `Unable connect to node` and
`Unable to update metadata` about 4,000 times a second. kafka-python, which aiokafka's client descends from,
fixed the same busy loop with a backoff (dpkp/kafka-python#733); aiokafka has no setting for it, so the refresh
is wrapped here: after each failed one the next waits 0.1 s, doubling up to `MAX_BACKOFF_S`, each wait drawn
between half and all of that (jitter, so the processes of a deployment do not reconnect in step). A success
resets it, so a broker that is back is found within one backoff.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiokafka.client import AIOKafkaClient

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


def backoff_s(failures: int) -> float:
    """The pause after `failures` failed refreshes in a row (1 or more)."""
    ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(failures - 1, 32))
    return random.uniform(ceiling / 2, ceiling)


_FAILURES = "_tributary_metadata_failures"
_original_update = AIOKafkaClient._metadata_update


async def _metadata_update_with_backoff(self: AIOKafkaClient, cluster_metadata: Any, topics: Any) -> bool:
    updated = bool(await _original_update(self, cluster_metadata, topics))
    if updated:
        setattr(self, _FAILURES, 0)
    else:
        failures = getattr(self, _FAILURES, 0) + 1
        setattr(self, _FAILURES, failures)
        await asyncio.sleep(backoff_s(failures))
    return updated


def install() -> None:
    """Idempotent; done when tributary.kafka is imported, so every role's clients have it."""
    AIOKafkaClient._metadata_update = _metadata_update_with_backoff
