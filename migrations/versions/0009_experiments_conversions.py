"""Experiments own goal-event conversions: a per-test watermark of ingested events, and the indexes the
incremental conversion job reads through (docs/conversions.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_conversion_watermarks",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("goal_event", sa.String(length=100), nullable=False),
        sa.Column("ingested_through", postgresql.TIMESTAMP(), nullable=False),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_conversion_watermarks_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_experiment_conversion_watermarks")),
    )
    op.create_index(
        "ix_ab_test_assignments_test_id_assigned_at", "ab_test_assignments", ["test_id", "assigned_at"]
    )
    # "Goal events ingested since X": ingest owns analytics_events and declares this index in its models;
    # it is created here because the conversion job is its first reader. On the partitioned parent it
    # is created on every partition (and on partitions made later).
    op.create_index(
        "ix_analytics_events_event_name_created_at_timestamp",
        "analytics_events",
        ["event_name", "created_at", "timestamp"],
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_events_event_name_created_at_timestamp", table_name="analytics_events")
    op.drop_index("ix_ab_test_assignments_test_id_assigned_at", table_name="ab_test_assignments")
    op.drop_table("experiment_conversion_watermarks")
