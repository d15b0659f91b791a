"""The services of the roles that serve reads (embedded, query-api): the kernel's, and the read side's."""

from __future__ import annotations

from dataclasses import dataclass

from query_api.cache import SearchCache
from query_api.consistency import ReadBarrier
from query_api.past_versions import PastVersions
from query_api.registry import Projections
from tributary.services import Services
from tributary.storage import DatasetStore


@dataclass(kw_only=True)
class ReadServices(Services):
    projections: Projections
    barrier: ReadBarrier
    search_cache: SearchCache
    past_versions: PastVersions
    # The datasets as stored: what projections do not hold (images) is read from there.
    store: DatasetStore
