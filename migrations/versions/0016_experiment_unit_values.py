"""Experiments keep per-unit metric state: each assigned unit's additive metric pieces per experiment,
folded incrementally from ingested events, and per experiment the definition the state was built for and
how far (ingestion time) it has read. docs/experiments-metrics.md ("How results are computed").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_unit_values",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("unit_id", sa.String(length=255), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("exposed_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("v", postgresql.ARRAY(sa.Float()), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_unit_values_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        # A user unit's row goes with its assignment (an erasure), so the rows never outnumber them.
        sa.ForeignKeyConstraint(
            ["test_id", "user_id"],
            ["ab_test_assignments.test_id", "ab_test_assignments.user_id"],
            name=op.f("fk_experiment_unit_values_test_id_ab_test_assignments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", "unit_id", name=op.f("pk_experiment_unit_values")),
    )
    op.create_index(
        "ix_experiment_unit_values_test_id_user_id", "experiment_unit_values", ["test_id", "user_id"]
    )
    op.create_table(
        "experiment_unit_value_marks",
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("definition", sa.String(length=64), nullable=False),
        sa.Column("ingested_through", postgresql.TIMESTAMP(), nullable=False),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_unit_value_marks_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_experiment_unit_value_marks")),
    )


def downgrade() -> None:
    op.drop_table("experiment_unit_value_marks")
    op.drop_index("ix_experiment_unit_values_test_id_user_id", table_name="experiment_unit_values")
    op.drop_table("experiment_unit_values")
