"""The write service: every write a client can ask for, whatever its transport (HTTP routes and gRPC servicers are
thin adapters over it). Each checks the request against the dataset, builds its command and submits it
(command_api/operations.py): 202-style `Accepted` with an operation id and a consistency token.

Who may write what was decided before (tributary/auth/gate.py); refusals are tributary/failures.py's."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import (
    FirstAttemptInFlight,
    IdempotencyKeyReused,
    Keyed,
    Submission,
    replay,
    submit,
)
from command_api.validation import check_embedder, check_records, metadata_problems, problem, vector_fields
from events import (
    Command,
    CreateDataset,
    CreateDatasetPayload,
    CreateSnapshot,
    CreateSnapshotPayload,
    DeleteDataset,
    DeleteSnapshot,
    DeleteSnapshotPayload,
    DeleteVectors,
    DeleteVectorsPayload,
    RestoreSnapshot,
    RestoreSnapshotPayload,
    UpdateMetadata,
    UpdateMetadataPayload,
    UpsertVectors,
    UpsertVectorsPayload,
    parse_embedder_config,
)
from events.commands import DatasetDefinition, FieldImages, FieldVectors, VectorField
from schemas.datasets import Accepted, CreateDatasetRequest
from schemas.snapshots import CreateSnapshotRequest
from schemas.vectors import OUTSIDE_FLOAT32, DeleteVectorsRequest, MetadataPatch, VectorRecord
from tributary.bus import CommandPublisher
from tributary.db.models import DatasetRow
from tributary.embedding import Embedders
from tributary.embedding.images import BadImage
from tributary.failures import Conflict, Invalid, NotFound, invalid
from tributary.settings import Settings
from tributary.snapshots import existing_snapshot


@dataclass(frozen=True)
class Writer:
    """The writes of one request: its tenant, its database session, and with an Idempotency-Key its `Keyed`
    (the same request always makes the same command, one the applier recognises; a key used again after its
    operation expired, command_api/retention.py, for another request makes a new one). With `wait` an answer
    comes once the write is applied or rejected, or the wait times out."""

    tenant: str
    session: AsyncSession
    publisher: CommandPublisher
    embedders: Embedders
    settings: Settings
    keyed: Keyed | None = None
    wait: bool = False

    async def replay(self) -> Accepted | None:
        """The first answer, when this request retries one with the same Idempotency-Key: asked before any
        check, so a retried create gets its first answer, not a conflict with what it made."""
        if self.keyed is None:
            return None
        try:
            return await replay(
                self.tenant, self.keyed, self.session, wait=self.wait, timeout=self.settings.wait_timeout_s
            )
        except IdempotencyKeyReused:
            raise _key_reused() from None

    async def create_dataset(self, body: CreateDatasetRequest) -> Accepted:
        check_embedder(body.embedder, body.dimensions, self.embedders)
        for name, field in body.vectors.items():
            check_embedder(field.embedder, field.dimensions, self.embedders, ("vectors", name, "embedder"))
        if await self.session.get(DatasetRow, (self.tenant, body.name)) is not None:
            raise Conflict(f"dataset {body.name!r} already exists")
        payload = CreateDatasetPayload(
            **{field: getattr(body, field) for field in DatasetDefinition.model_fields}
        )
        return await self._submit(CreateDataset(tenant=self.tenant, dataset=body.name, payload=payload))

    async def delete_dataset(self, dataset: str) -> Accepted:
        await self.existing(dataset)
        return await self._submit(DeleteDataset(tenant=self.tenant, dataset=dataset))

    async def existing(self, dataset: str) -> DatasetRow:
        row = await self.session.get(DatasetRow, (self.tenant, dataset))
        if row is None:
            raise NotFound(f"dataset {dataset!r} not found")
        return row

    async def upsert_vectors(self, dataset: str, records: list[VectorRecord]) -> Accepted:
        row = await self.existing(dataset)
        fields = vector_fields(row)
        check_records(records, row, fields)
        if any(record.vector is None for record in records) or any(f.embedder for f in fields.values()):
            # Embedding can take seconds: hand the database connection back to the pool meanwhile.
            await self.session.commit()
        ids = [record.id or uuid.uuid4().hex for record in records]
        images = await _record_images(records, self.embedders)
        vectors, absent = await _record_vectors(records, row, self.embedders)
        named = {
            name: await _field_vectors(records, name, field, self.embedders, images.get(name, {}))
            for name, field in fields.items()
        }
        command = UpsertVectors(
            tenant=row.tenant,
            dataset=row.name,
            payload=UpsertVectorsPayload(
                ids=ids,
                vectors=vectors,
                vector_absent=absent,
                texts=[record.text for record in records],
                metadata=[record.metadata or {} for record in records],
                # A field no record carries is left out.
                named_vectors={name: given for name, given in named.items() if given.rows},
                images={
                    name: FieldImages(rows=sorted(given), images=[given[i] for i in sorted(given)])
                    for name, given in images.items()
                },
            ),
        )
        return await self._submit(command, ids)

    async def delete_vectors(self, dataset: str, body: DeleteVectorsRequest) -> Accepted:
        row = await self.existing(dataset)
        payload = DeleteVectorsPayload(ids=body.ids, filter=body.filter)
        return await self._submit(DeleteVectors(tenant=row.tenant, dataset=row.name, payload=payload))

    async def update_metadata(self, dataset: str, vector_id: str, body: MetadataPatch) -> Accepted:
        row = await self.existing(dataset)
        if problems := metadata_problems(body.metadata, row.metadata_schema, ("metadata",)):
            raise Invalid(problems)
        payload = UpdateMetadataPayload(id=vector_id, metadata=body.metadata, merge=body.merge)
        return await self._submit(UpdateMetadata(tenant=row.tenant, dataset=row.name, payload=payload))

    async def create_snapshot(self, dataset: str, body: CreateSnapshotRequest) -> Accepted:
        row = await self.existing(dataset)
        payload = CreateSnapshotPayload(keep_last=body.keep_last, max_age_days=body.max_age_days)
        return await self._submit(CreateSnapshot(tenant=row.tenant, dataset=row.name, payload=payload))

    async def delete_snapshot(self, dataset: str, snapshot_id: str) -> Accepted:
        await existing_snapshot(self.settings, self.tenant, dataset, snapshot_id)
        payload = DeleteSnapshotPayload(snapshot_id=snapshot_id)
        return await self._submit(DeleteSnapshot(tenant=self.tenant, dataset=dataset, payload=payload))

    async def restore_snapshot(self, dataset: str, snapshot_id: str, target: str) -> Accepted:
        """Over `dataset` itself when `target` is it, else into `target`, a dataset that must not exist."""
        await existing_snapshot(self.settings, self.tenant, dataset, snapshot_id)
        if target != dataset and await self.session.get(DatasetRow, (self.tenant, target)) is not None:
            raise Conflict(f"dataset {target!r} already exists")
        payload = RestoreSnapshotPayload(source_dataset=dataset, snapshot_id=snapshot_id)
        return await self._submit(RestoreSnapshot(tenant=self.tenant, dataset=target, payload=payload))

    async def _submit(self, command: Command, ids: list[str] | None = None) -> Accepted:
        if self.keyed is not None:
            command = command.model_copy(
                update={"id": _operation_id(self.tenant, self.keyed), "idempotency_key": self.keyed.key}
            )
        try:
            return await submit(
                Submission(command, self.keyed, ids),
                self.session,
                self.publisher,
                part_bytes=self.settings.command_part_bytes,
                wait=self.wait,
                timeout=self.settings.wait_timeout_s,
            )
        except IdempotencyKeyReused:
            raise _key_reused() from None
        except FirstAttemptInFlight:
            raise Conflict("the first request with this Idempotency-Key is in flight; retry") from None


async def _record_vectors(
    records: list[VectorRecord], dataset: DatasetRow, embedders: Embedders
) -> tuple[npt.NDArray[np.float32], list[int]]:
    """The records' default vectors as one matrix (zeros in the rows of records without one) and those rows:
    given ones as they are, the texts of the others embedded by the dataset's embedder in one call. Records were
    checked: each has a vector, or a text and the dataset an embedder, or a named field's vector. An embedder
    failure is a 503 with its reason, before anything is published."""
    embedder = parse_embedder_config(dataset.embedder) if dataset.embedder else None
    given = {i: record.vector for i, record in enumerate(records) if record.vector is not None}
    embed = None if embedder is None else partial(embedders.embed, embedder, dataset.dimensions)
    rows, vectors = await _given_or_embedded(
        given, _texts(records, given) if embed else {}, dataset.dimensions, embed, ("vector",)
    )
    if len(rows) == len(records):
        # Every record has its vector (the rows are distinct): the usual write, without a copy of 1.5 MB.
        return vectors, []
    matrix = np.zeros((len(records), dataset.dimensions), dtype=np.float32)
    matrix[rows] = vectors
    return matrix, sorted(set(range(len(records))) - set(rows))


async def _field_vectors(
    records: list[VectorRecord],
    name: str,
    field: VectorField,
    embedders: Embedders,
    images: Mapping[int, bytes],
) -> FieldVectors:
    """The records' vectors of one named field: given ones as they are, and for the records that give none, with
    the field's text embedder their texts embedded in one call, with its image embedder their `images`;
    records with neither do not carry the field."""
    given = {i: r.vectors[name] for i, r in enumerate(records) if r.vectors and name in r.vectors}
    pending: Mapping[int, str | bytes] = {}
    embed: Embed | None = None
    if (text_embedder := field.text_embedder) is not None:
        pending, embed = _texts(records, given), partial(embedders.embed, text_embedder, field.dimensions)
    elif (image_embedder := field.image_embedder) is not None:
        pending = {i: image for i, image in images.items() if i not in given}
        embed = partial(embedders.embed_images, image_embedder, field.dimensions)
    rows, vectors = await _given_or_embedded(given, pending, field.dimensions, embed, ("vectors", name))
    return FieldVectors(rows=rows, vectors=vectors)


async def _record_images(records: list[VectorRecord], embedders: Embedders) -> dict[str, dict[int, bytes]]:
    """The records' images by field then row: sent ones checked, those given by URL fetched (all at once). An
    image that cannot be used is a 422 naming its record and field, before anything is embedded or published."""
    places = [(i, name, ref) for i, r in enumerate(records) for name, ref in (r.images or {}).items()]
    loaded = await embedders.images.load_all([ref for _, _, ref in places])
    images: dict[str, dict[int, bytes]] = {}
    problems = []
    for (i, name, _), image in zip(places, loaded, strict=True):
        if isinstance(image, BadImage):
            problems.append(problem(("vectors", i, "images", name), str(image)))
        else:
            images.setdefault(name, {})[i] = image
    if problems:
        raise Invalid(problems)
    return images


# Embeds a request's texts or images in one call (`Embedders.embed`, `Embedders.embed_images`, bound to a
# field's embedder and width).
Embed = Callable[[list[Any]], Awaitable[npt.NDArray[np.float32]]]


def _texts(records: list[VectorRecord], given: dict[int, Any]) -> dict[int, str]:
    """The texts an embedder embeds: of the records that give no vector."""
    return {i: r.text for i, r in enumerate(records) if i not in given and r.text and r.text.strip()}


async def _given_or_embedded(
    given: dict[int, Any],
    pending: Mapping[int, str | bytes],
    dimensions: int,
    embed: Embed | None,
    field: tuple[str, ...],
) -> tuple[list[int], npt.NDArray[np.float32]]:
    """The rows that carry a vector, in order, and their vectors: given ones (refused beyond float32, the
    problem at the record's `field`), and the `pending` texts or images embedded in one call."""
    rows = sorted([*given, *pending])
    at = {row: n for n, row in enumerate(rows)}
    if given:
        with np.errstate(over="ignore"):  # a double beyond float32 becomes infinity: refused just below
            block = np.asarray(list(given.values()), dtype=np.float32)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = [list(given)[n] for n in np.flatnonzero(~finite)]
            raise Invalid([problem(("vectors", i, *field), OUTSIDE_FLOAT32) for i in bad])
        if not pending and list(given) == rows:
            # The usual write: every vector given, in order. A copy into a new 1.5 MB matrix (a 1,000 x 384
            # write) costs more in fresh pages than in copying.
            return rows, block
    matrix = np.empty((len(rows), dimensions), dtype=np.float32)
    if given:
        matrix[[at[i] for i in given]] = block
    if pending and embed is not None:
        matrix[[at[i] for i in pending]] = await embed(list(pending.values()))
    return rows, matrix


def _operation_id(tenant: str, keyed: Keyed) -> UUID:
    return uuid5(NAMESPACE_URL, f"tributary:idempotency:{tenant}:{keyed.key}:{keyed.request_hash}")


def _key_reused() -> Invalid:
    return invalid(
        ("header", "idempotency-key"), "this Idempotency-Key was used for a different request; use a new key"
    )
