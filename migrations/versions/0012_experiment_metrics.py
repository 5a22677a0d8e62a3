"""Experiment metrics: metric definitions computed from ingested events, each experiment's metrics with
their roles, and its analysis settings (CUPED, correction). docs/experiments-metrics.md, docs/schema.md.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "experiment_metrics",
        sa.Column("metric_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("event_name", sa.String(length=100), nullable=True),
        sa.Column("property_name", sa.String(length=100), nullable=True),
        sa.Column("numerator_id", sa.UUID(), nullable=True),
        sa.Column("denominator_id", sa.UUID(), nullable=True),
        sa.Column("window_hours", sa.Integer(), nullable=True),
        sa.Column("retention_from_day", sa.SmallInteger(), nullable=True),
        sa.Column("retention_to_day", sa.SmallInteger(), nullable=True),
        sa.Column("cap_percentile", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["numerator_id"],
            ["experiment_metrics.metric_id"],
            name=op.f("fk_experiment_metrics_numerator_id_experiment_metrics"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["denominator_id"],
            ["experiment_metrics.metric_id"],
            name=op.f("fk_experiment_metrics_denominator_id_experiment_metrics"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("metric_id", name=op.f("pk_experiment_metrics")),
        sa.UniqueConstraint("name", name=op.f("uq_experiment_metrics_name")),
    )
    op.create_index("ix_experiment_metrics_numerator_id", "experiment_metrics", ["numerator_id"])
    op.create_index("ix_experiment_metrics_denominator_id", "experiment_metrics", ["denominator_id"])
    op.create_table(
        "experiment_metric_links",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("metric_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_metric_links_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"],
            ["experiment_metrics.metric_id"],
            name=op.f("fk_experiment_metric_links_metric_id_experiment_metrics"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("test_id", "metric_id", name="pk_experiment_metric_links"),
    )
    op.create_index("ix_experiment_metric_links_metric_id", "experiment_metric_links", ["metric_id"])
    op.create_table(
        "experiment_analysis",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("cuped_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("cuped_lookback_days", sa.SmallInteger(), server_default=sa.text("14"), nullable=False),
        sa.Column("correction", sa.String(length=10), server_default=sa.text("'holm'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_analysis_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_experiment_analysis")),
    )


def downgrade() -> None:
    op.drop_table("experiment_analysis")
    op.drop_index("ix_experiment_metric_links_metric_id", table_name="experiment_metric_links")
    op.drop_table("experiment_metric_links")
    op.drop_index("ix_experiment_metrics_denominator_id", table_name="experiment_metrics")
    op.drop_index("ix_experiment_metrics_numerator_id", table_name="experiment_metrics")
    op.drop_table("experiment_metrics")
