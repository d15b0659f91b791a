"""Operations expire: an index for the periodic purge of the old ones, and the Idempotency-Key in its own
column (unique per tenant), as operation ids now derive from the key and the request. Rows written before it do
not hold their key, so a request retried across the upgrade is not matched to its first answer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_operations_updated_at", "operations", ["updated_at"])
    op.add_column("operations", sa.Column("idempotency_key", sa.String(256), nullable=True))
    op.create_index("uq_operations_idempotency_key", "operations", ["tenant", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_operations_idempotency_key", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("idempotency_key")
    op.drop_index("ix_operations_updated_at", table_name="operations")
