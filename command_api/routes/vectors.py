"""Vector writes: upsert, delete, metadata update. Each answers 202 with an operation id and a token."""

from __future__ import annotations

import uuid
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from fastapi.exceptions import RequestValidationError

from command_api.deps import WRITE_RESPONSES, SubmitDep, answer_retries_first
from command_api.validation import check_records, metadata_problems, problem
from events import (
    DeleteVectors,
    DeleteVectorsPayload,
    UpdateMetadata,
    UpdateMetadataPayload,
    UpsertVectors,
    UpsertVectorsPayload,
    parse_embedder_config,
)
from events.commands import VectorId
from schemas.datasets import Accepted
from schemas.vectors import (
    OUTSIDE_FLOAT32,
    DeleteVectorsRequest,
    MetadataPatch,
    UpsertVectorsRequest,
    VectorRecord,
)
from tributary.db.models import DatasetRow
from tributary.deps import EmbeddersDep, SessionDep, TenantDep, WritableDataset, allowed
from tributary.embedding import Embedders, EmbeddingFailed
from tributary.errors import responses
from tributary.json_route import JSONRoute

router = APIRouter(
    prefix="/api/v1/datasets/{dataset}/vectors",
    tags=["vectors"],
    dependencies=[Depends(allowed("write")), Depends(answer_retries_first)],
    route_class=JSONRoute,
    responses=WRITE_RESPONSES,
)


async def existing_dataset(dataset: WritableDataset, session: SessionDep, tenant: TenantDep) -> DatasetRow:
    row = await session.get(DatasetRow, (tenant, dataset))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {dataset!r} not found")
    return row


DatasetDep = Annotated[DatasetRow, Depends(existing_dataset)]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, responses=responses(503))
async def upsert_vectors(
    body: UpsertVectorsRequest,
    dataset: DatasetDep,
    response: Response,
    submit: SubmitDep,
    embedders: EmbeddersDep,
    session: SessionDep,
) -> Accepted:
    check_records(body.vectors, dataset)
    if any(record.vector is None for record in body.vectors):
        # Embedding can take seconds: hand the database connection back to the pool meanwhile.
        await session.commit()
    ids = [record.id or uuid.uuid4().hex for record in body.vectors]
    command = UpsertVectors(
        tenant=dataset.tenant,
        dataset=dataset.name,
        payload=UpsertVectorsPayload(
            ids=ids,
            vectors=await record_vectors(body.vectors, dataset, embedders),
            texts=[record.text for record in body.vectors],
            metadata=[record.metadata or {} for record in body.vectors],
        ),
    )
    return await submit(command, response, ids)


async def record_vectors(
    records: list[VectorRecord], dataset: DatasetRow, embedders: Embedders
) -> npt.NDArray[np.float32]:
    """The records' vectors as one matrix: given ones as they are, the texts of the others embedded by the
    dataset's embedder in one call. Records were checked: each has a vector, or a text and the dataset an
    embedder. An embedder failure is a 503 with its reason, before anything is published."""
    matrix = np.empty((len(records), dataset.dimensions), dtype=np.float32)
    given = [i for i, record in enumerate(records) if record.vector is not None]
    if given:
        with np.errstate(over="ignore"):  # a double beyond float32 becomes infinity: refused just below
            matrix[given] = np.asarray([records[i].vector for i in given], dtype=np.float32)
        finite = np.isfinite(matrix[given]).all(axis=1)
        if not finite.all():
            bad = [given[row] for row in np.flatnonzero(~finite)]
            raise RequestValidationError([problem(("vectors", i, "vector"), OUTSIDE_FLOAT32) for i in bad])
    texts = [(i, record.text) for i, record in enumerate(records) if record.vector is None]
    if texts:
        try:
            embedder = embedders.get(parse_embedder_config(dataset.embedder), dataset.dimensions)
            matrix[[i for i, _ in texts]] = await embedder.embed([text or "" for _, text in texts])
        except EmbeddingFailed as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"embedding failed: {exc}") from exc
    return matrix


@router.post("/delete", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def delete_vectors(
    body: DeleteVectorsRequest,
    dataset: DatasetDep,
    response: Response,
    submit: SubmitDep,
) -> Accepted:
    command = DeleteVectors(
        tenant=dataset.tenant,
        dataset=dataset.name,
        payload=DeleteVectorsPayload(ids=body.ids, filter=body.filter),
    )
    return await submit(command, response)


@router.patch("/{vector_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def update_metadata(
    vector_id: Annotated[VectorId, Path()],
    body: MetadataPatch,
    dataset: DatasetDep,
    response: Response,
    submit: SubmitDep,
) -> Accepted:
    if problems := metadata_problems(body.metadata, dataset.metadata_schema, ("metadata",)):
        raise RequestValidationError(problems)
    command = UpdateMetadata(
        tenant=dataset.tenant,
        dataset=dataset.name,
        payload=UpdateMetadataPayload(id=vector_id, metadata=body.metadata, merge=body.merge),
    )
    return await submit(command, response)
