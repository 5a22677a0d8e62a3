"""Aggregation: event rollups, active users, experiment daily counts, run ledger, finalisations, exports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column[object]:
    return sa.Column(
        "computed_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
    )


def _counts(*names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "event_rollups_hourly",
        sa.Column("period", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("event_name", sa.String(length=100), nullable=False),
        sa.Column("event_category", sa.String(length=50), nullable=False),
        *_counts("events", "users", "devices", "sessions"),
        _now(),
        sa.PrimaryKeyConstraint(
            "period", "event_name", "event_category", name=op.f("pk_event_rollups_hourly")
        ),
    )
    op.create_table(
        "event_rollups_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event_name", sa.String(length=100), nullable=False),
        sa.Column("event_category", sa.String(length=50), nullable=False),
        *_counts("events", "users", "devices", "sessions"),
        _now(),
        sa.PrimaryKeyConstraint("day", "event_name", "event_category", name=op.f("pk_event_rollups_daily")),
    )
    op.create_table(
        "active_users_daily",
        sa.Column("day", sa.Date(), nullable=False),
        *_counts("dau", "wau", "mau"),
        _now(),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_active_users_daily")),
    )
    op.create_table(
        "active_user_sets",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("people", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.LargeBinary(), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_active_user_sets")),
    )
    op.create_table(
        "experiment_daily",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_counts("assigned", "converted"),
        _now(),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_daily_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_test_variants.variant_id"],
            name=op.f("fk_experiment_daily_variant_id_ab_test_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", "variant_id", "day", name=op.f("pk_experiment_daily")),
    )
    op.create_index("ix_experiment_daily_variant_id", "experiment_daily", ["variant_id"], unique=False)
    op.create_table(
        "aggregation_runs",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("period", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("source_events", sa.BigInteger(), nullable=True),
        sa.Column("source_max_created_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("finished_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "period", name=op.f("pk_aggregation_runs")),
    )
    op.create_index("ix_aggregation_runs_status", "aggregation_runs", ["status"], unique=False)
    op.create_table(
        "rollup_finalisations",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("raw_events", sa.BigInteger(), nullable=False),
        sa.Column("rollup_events", sa.BigInteger(), nullable=False),
        sa.Column(
            "finalised_at",
            postgresql.TIMESTAMP(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_rollup_finalisations")),
    )
    op.create_table(
        "exports",
        sa.Column("export_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("requested_by", sa.UUID(), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("started_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("heartbeat_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("finished_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.user_id"],
            name=op.f("fk_exports_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("export_id", name=op.f("pk_exports")),
    )
    op.create_index("ix_exports_requested_by", "exports", ["requested_by"], unique=False)
    op.create_index("ix_exports_status", "exports", ["status"], unique=False)
    # Day-range reads of event properties (exports); BRIN costs ingest almost nothing.
    op.create_index(
        "ix_event_properties_timestamp_brin",
        "event_properties",
        ["timestamp"],
        unique=False,
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    op.drop_index("ix_event_properties_timestamp_brin", table_name="event_properties")
    op.drop_index("ix_exports_status", table_name="exports")
    op.drop_index("ix_exports_requested_by", table_name="exports")
    op.drop_table("exports")
    op.drop_table("rollup_finalisations")
    op.drop_index("ix_aggregation_runs_status", table_name="aggregation_runs")
    op.drop_table("aggregation_runs")
    op.drop_index("ix_experiment_daily_variant_id", table_name="experiment_daily")
    op.drop_table("experiment_daily")
    op.drop_table("active_user_sets")
    op.drop_table("active_users_daily")
    op.drop_table("event_rollups_daily")
    op.drop_table("event_rollups_hourly")
