"""Operations expire: an index for the periodic purge of the old ones.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_operations_updated_at", "operations", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_operations_updated_at", table_name="operations")
