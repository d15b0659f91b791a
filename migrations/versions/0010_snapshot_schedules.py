"""A dataset's snapshot schedule: every so many seconds, with the retention applied after each.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "snapshot_schedules",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("every_s", sa.Float(), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=True),
        sa.Column("max_age_days", sa.Float(), nullable=True),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_snapshot_schedules_next_at", "snapshot_schedules", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_schedules_next_at", "snapshot_schedules")
    op.drop_table("snapshot_schedules")
