"""The daily results' cache (experiment_daily_results) and the index its late-data check reads
experiment_identity_links by. docs/experiments-metrics.md ("Over time"), docs/schema.md.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_daily_results",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("analysis_hash", sa.String(length=64), nullable=False),
        sa.Column("sums", postgresql.JSON(), nullable=False),
        sa.Column("computed_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("ingested_through", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("tail_events", sa.BigInteger(), nullable=False),
        sa.Column("tail_links", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", postgresql.TIMESTAMP(), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_daily_results_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", "day", name=op.f("pk_experiment_daily_results")),
    )
    op.create_index("ix_experiment_identity_links_created_at", "experiment_identity_links", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_experiment_identity_links_created_at", table_name="experiment_identity_links")
    op.drop_table("experiment_daily_results")
