"""Dead letters kept in SQL, from either transport, to be listed, inspected, replayed and purged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, index=True),
        sa.Column("dataset", sa.String(64), nullable=True),
        sa.Column("command_type", sa.String(32), nullable=True),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source_topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer, nullable=True),
        sa.Column("offset", sa.BigInteger, nullable=True),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("replay_operation", sa.String(36), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
