"""Retention ledger.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_actions",
        sa.Column("action_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("policy_now", postgresql.TIMESTAMP(), nullable=False),
        sa.Column(
            "started_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("finished_at", postgresql.TIMESTAMP(), nullable=True),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_retention_actions")),
    )
    op.create_index("ix_retention_actions_run_id", "retention_actions", ["run_id"], unique=False)
    op.create_index("ix_retention_actions_started_at", "retention_actions", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_retention_actions_started_at", table_name="retention_actions")
    op.drop_index("ix_retention_actions_run_id", table_name="retention_actions")
    op.drop_table("retention_actions")
