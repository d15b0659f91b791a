"""The read service: search, batch search, get, scroll and count of a dataset's vectors at a consistency level,
whatever the transport (the HTTP routes and the gRPC servicers are thin adapters over it).

A read first reaches its consistency level (`Reader.served`), then answers from the dataset's projection; a read
at a past `version` answers from that version's projection instead (query_api/past_versions.py). Who may read
what was decided before (tributary/auth/gate.py); refusals are tributary/failures.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from events.commands import (
    DEFAULT_VECTOR_FIELD,
    AnyEmbedder,
    ImageEmbedder,
    OpenAIImageEmbedderConfig,
    image_fields,
)
from events.filters import FilterNode, parse_filter
from query_api.cache import SearchCache
from query_api.consistency import ConsistencyLevel, TokenBeyondLog
from query_api.projection import DatasetProjection
from query_api.registry import Served
from query_api.searching import PlannedInput, SearchPlan, run_search, views
from query_api.services import ReadServices
from schemas.datasets import DatasetVersionView
from schemas.search import (
    CountRequest,
    GetVectorsRequest,
    Include,
    ScrollRequest,
    SearchPage,
    SearchRequest,
    VectorView,
)
from tributary.bus import ConsistencyToken
from tributary.embedding.images import BadImage, ImageRef
from tributary.failures import Invalid, NotFound, TimedOut, invalid

# The `consistency` of an answer read at a past version: no level applies to a version that cannot change.
FIXED: Literal["fixed"] = "fixed"


@dataclass(frozen=True)
class ServedRead:
    """A dataset's projection once the replica reached the read's consistency, and what the answer reflects (a
    read at a past version reflects no event-log position: only its version)."""

    dataset: str
    served: Served
    consistency: ConsistencyLevel | Literal["fixed"]
    reflects: dict[str, int]

    @property
    def past(self) -> bool:
        return self.consistency == FIXED

    @property
    def state(self) -> dict[str, Any]:
        """The fields of `schemas.search.ReadState`: every read's answer carries them."""
        return {
            "consistency": self.consistency,
            "version": self.projection.version,
            "reflects": self.reflects,
        }

    @property
    def projection(self) -> DatasetProjection:
        return self.served.projection


@dataclass(frozen=True)
class Reader:
    """The reads of one tenant's request."""

    services: ReadServices
    tenant: str

    async def served(
        self,
        dataset: str,
        consistency: ConsistencyLevel | None = None,
        token: str | None = None,
        version: str | None = None,
    ) -> ServedRead:
        """The dataset, once this replica reached `consistency` (bounded when None; `token`: a write's consistency
        token, which `session` needs). A replica that cannot get there within `read_timeout_s` says so
        (TimedOut). With `version`, the dataset at that version instead (`at_version`)."""
        if version is not None:
            if consistency is not None or token is not None:
                # A level asks for the newest writes, or a token for one write: a past version has what it has.
                raise invalid(
                    ("query", "version"),
                    "a read at a past version is fixed: give `version` without `consistency` or `token`",
                )
            return await self.at_version(dataset, version)
        consistency = consistency or "bounded"
        parsed = None
        if consistency == "session":
            if token is None:
                raise invalid(("query", "token"), "session consistency needs a `token`")
            try:
                parsed = ConsistencyToken.parse(token)
            except ValueError as exc:
                raise invalid(("query", "token"), str(exc)) from None
        barrier, timeout = self.services.barrier, self.services.settings.read_timeout_s
        try:
            reached = await barrier.reach(consistency, self.tenant, dataset, parsed, timeout)
        except TokenBeyondLog as exc:
            raise invalid(("query", "token"), str(exc)) from None
        if not reached:
            raise TimedOut(
                f"this replica did not reach {consistency} consistency within {timeout} s; retry, "
                "or read with a weaker level"
            )
        return ServedRead(dataset, self._served_now(dataset), consistency, barrier.reflected())

    def _served_now(self, dataset: str) -> Served:
        """The dataset as this replica serves it: what decides whether it exists, for every read."""
        served = self.services.projections.get(self.tenant, dataset)
        if served is None:
            raise NotFound(f"dataset {dataset!r} not found")
        return served

    async def at_version(self, dataset: str, version: str) -> ServedRead:
        """The dataset as it was at `version`: a DeepLake version id, a tag, or a snapshot id."""
        self._served_now(dataset)
        past = self.services.past_versions
        ref = await asyncio.to_thread(past.find, self.tenant, dataset, version)
        served = None if ref is None else await asyncio.to_thread(past.get, self.tenant, dataset, ref)
        if served is None:
            raise NotFound(f"dataset {dataset!r} has no version, tag or snapshot {version!r}")
        return ServedRead(dataset, served, FIXED, {})

    async def versions(self, dataset: str) -> list[DatasetVersionView]:
        """The dataset's history, oldest first: each version a read may name."""
        self._served_now(dataset)
        history = await asyncio.to_thread(self.services.past_versions.history, self.tenant, dataset)
        if history is None:
            raise NotFound(f"dataset {dataset!r} not found")
        return [DatasetVersionView.model_validate(version) for version in history]

    async def search_page(self, read: ServedRead, body: SearchRequest) -> bytes:
        """One page of results as `SearchPage` JSON, from the search cache when another read asked the same
        of the same version: the read's own state is not in it, so a cached page never carries another's.
        Reads at a past version are not cached: their exact answers could differ from the live index's at the
        same version. Nor are pages with images: they are large, and read from storage (`_with_images`)."""
        if read.past or "images" in body.include:
            if body.ef is not None:
                raise invalid(("body", "ef"), "a past version is searched by exact scan: `ef` does not apply")
            return await self._search(read, body)
        projection = read.projection
        cache = self.services.search_cache
        key = SearchCache.key(
            self.tenant,
            read.dataset,
            read.served.dataset_id,
            projection.version,
            projection.applied_at_version,
            projection.tuning_key,
            body,
        )
        page = await cache.get(key)
        if page is None:
            page = await self._search(read, body)
            await cache.put(key, page)
        return page

    async def _search(self, read: ServedRead, body: SearchRequest) -> bytes:
        served = read.served
        inputs: list[PlannedInput] = []
        vector = None
        if body.queries is not None:
            for i, query in enumerate(body.queries):
                loc = ("body", "queries", i)
                if query.mode == "text":
                    inputs.append(PlannedInput(None, None, query.text, query.weight))
                else:
                    found = await self._query_vector(
                        served, query.field, query.vector, query.text, loc, query.image
                    )
                    inputs.append(PlannedInput(query.field, found, None, query.weight))
        elif body.mode != "text":
            vector = await self._query_vector(
                served, body.field, body.vector, body.text, ("body",), body.image
            )
        results, more = await asyncio.to_thread(
            run_search, served, SearchPlan.of(body, vector, served.projection.analyzer, inputs)
        )
        results = await self._with_images(read, results, body.include)
        page = SearchPage(results=results, next_offset=body.offset + len(results) if more else None)
        return page.model_dump_json(exclude_none=True).encode()

    async def _query_vector(
        self,
        served: Served,
        field: str,
        given: npt.ArrayLike | None,
        text: str | None,
        loc: tuple[str | int, ...],
        image: ImageRef | None = None,
    ) -> npt.NDArray[np.float32]:
        """The query vector of a vector field: the one given, or `text` embedded by the field's text embedder, or
        `image` by its image embedder."""
        spec = served.spec
        embedder: AnyEmbedder | None
        if field == DEFAULT_VECTOR_FIELD:
            dimensions, embedder = spec.dimensions, spec.embedder
        elif (named := spec.vectors.get(field)) is not None:
            dimensions, embedder = named.dimensions, named.embedder
        else:
            raise no_vector_field(field, [DEFAULT_VECTOR_FIELD, *sorted(spec.vectors)], loc)
        where = "this dataset" if field == DEFAULT_VECTOR_FIELD else f"the field {field!r}"
        if given is None:
            if embedder is None:
                raise invalid((*loc, "vector"), f"{where} has no embedder: give a query vector")
            embedders = self.services.embedders
            if isinstance(embedder, OpenAIImageEmbedderConfig) and image is None and text is not None:
                # A CLIP-style model embeds texts into its images' space: text finds images.
                embedded = await embedders.embed_image_texts(embedder, dimensions, [text])
            elif isinstance(embedder, ImageEmbedder):
                if image is None:
                    raise invalid(
                        (*loc, "image"),
                        f"{where} embeds images with the local pixel embedder: give a query `image` or vector",
                    )
                try:
                    data = await embedders.images.load(image)
                except BadImage as exc:
                    raise invalid((*loc, "image"), str(exc)) from None
                embedded = await embedders.embed_images(embedder, dimensions, [data])
            elif image is not None:
                raise invalid((*loc, "image"), f"{where} does not embed images: its embedder embeds text")
            else:
                embedded = await embedders.embed(embedder, dimensions, [text or ""])
            return np.asarray(embedded[0], dtype=np.float32)
        vector = np.asarray(given, dtype=np.float32)
        if len(vector) != dimensions:
            where = "the dataset has" if field == DEFAULT_VECTOR_FIELD else f"the field {field!r} has"
            raise invalid(
                (*loc, "vector"), f"the query vector has {len(vector)} dimensions, {where} {dimensions}"
            )
        return vector

    async def get(self, read: ServedRead, body: GetVectorsRequest) -> list[VectorView]:
        """The vectors of these ids that exist, in the order asked."""
        found = await asyncio.to_thread(_by_ids, read.projection, body.ids, body.include)
        return await self._with_images(read, found, body.include)

    async def _with_images(
        self, read: ServedRead, views: list[VectorView], include: Sequence[Include]
    ) -> list[VectorView]:
        """The views with their images when `include` asks for them: read from storage at the version the read
        serves (the projection's, or the past version read), never held by the projection, which keeps what
        searches need. Not the dataset's last commit: a commit whose events the replica has not applied yet could
        give a result another image, or none."""
        fields = image_fields(read.served.spec.vectors)
        if "images" not in include or not views or not fields:
            return views
        at = read.projection.version or None
        ids = [view.id for view in views]
        found = await asyncio.to_thread(
            self.services.store.images_of, self.tenant, read.dataset, ids, fields, at
        )
        return [view.model_copy(update={"images": found.get(view.id, {})}) for view in views]

    async def get_one(self, read: ServedRead, vector_id: str) -> VectorView:
        found = await asyncio.to_thread(_by_ids, read.projection, [vector_id], ["vector", "metadata", "text"])
        if not found:
            raise NotFound(f"vector {vector_id!r} not found")
        return found[0]

    async def scroll(self, read: ServedRead, body: ScrollRequest) -> tuple[list[VectorView], str | None]:
        """A page of the vectors that match the filter, in slot order, and the cursor of the next page."""
        # ScrollRequest's pattern made the cursor a short run of ASCII digits ("²" passes str.isdigit, not int()).
        start = 0 if body.cursor is None else int(body.cursor)

        def page() -> tuple[list[VectorView], str | None]:
            projection = read.projection
            with projection.lock.reading():
                slots = projection.live_slots(projection.allowed(_filter(body.filter, projection)))
                after = slots[slots >= start]
                chosen = [int(s) for s in after[: body.limit]]
                more = len(after) > body.limit
                found = views(projection, [(slot, None) for slot in chosen], body.include)
                return found, str(chosen[-1] + 1) if more else None

        found, cursor = await asyncio.to_thread(page)
        return await self._with_images(read, found, body.include), cursor

    async def count(self, read: ServedRead, body: CountRequest) -> int:
        def counted() -> int:
            projection = read.projection
            with projection.lock.reading():
                return len(projection.live_slots(projection.allowed(_filter(body.filter, projection))))

        return await asyncio.to_thread(counted)


def _filter(raw: dict[str, Any] | None, projection: DatasetProjection) -> FilterNode | None:
    return None if raw is None else parse_filter(raw, projection.analyzer)


def _by_ids(
    projection: DatasetProjection, ids: Sequence[str], include: Sequence[Include]
) -> list[VectorView]:
    with projection.lock.reading():
        slots = [slot for vector_id in ids if (slot := projection.slot(vector_id)) is not None]
        return views(projection, [(slot, None) for slot in slots], include)


def no_vector_field(field: str, known: Iterable[str], loc: tuple[str | int, ...]) -> Invalid:
    """The refusal of a request naming a vector field the dataset does not have (`field` at `loc`)."""
    return invalid((*loc, "field"), f"the dataset has no vector field {field!r} (it has {', '.join(known)})")
