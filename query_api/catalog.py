"""The catalog service: datasets and operation status, read from the SQL projections, whatever the transport.
As everywhere, what belongs to another tenant, or to a dataset the credential may not read, is not found."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.datasets import DatasetView, OperationView
from tributary.auth.principal import Principal, authorize
from tributary.db.models import DatasetRow, OperationRow
from tributary.db.outcomes import settled
from tributary.failures import NotFound


async def list_datasets(session: AsyncSession, principal: Principal) -> list[DatasetView]:
    rows = await session.scalars(
        select(DatasetRow).where(DatasetRow.tenant == principal.tenant).order_by(DatasetRow.name)
    )
    # A credential limited to some datasets lists only those.
    visible = [row for row in rows if authorize(principal, "read", principal.tenant, row.name)]
    return [DatasetView.model_validate(row) for row in visible]


async def get_dataset(session: AsyncSession, tenant: str, dataset: str) -> DatasetView:
    row = await session.get(DatasetRow, (tenant, dataset))
    if row is None:
        raise NotFound(f"dataset {dataset!r} not found")
    return DatasetView.model_validate(row)


async def readable_operation(session: AsyncSession, principal: Principal, operation_id: str) -> OperationRow:
    """The operation, when it is of the principal's tenant and of a dataset the principal may read."""
    row = await session.get(OperationRow, operation_id)
    if row is None or not authorize(principal, "read", row.tenant, row.dataset):
        raise NotFound(f"operation {operation_id!r} not found")
    return row


async def get_operation(session: AsyncSession, principal: Principal, operation_id: str) -> OperationView:
    return OperationView.model_validate(await readable_operation(session, principal, operation_id))


async def wait_operation(
    session: AsyncSession, principal: Principal, operation_id: str, timeout: float
) -> OperationView:
    """The operation once applied or rejected, or as it is when `timeout` passes first."""
    row = await readable_operation(session, principal, operation_id)
    return OperationView.model_validate(await settled(session, row.id, timeout) or row)
