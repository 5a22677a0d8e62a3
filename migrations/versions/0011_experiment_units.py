"""Experiment units: an experiment assigns registered users (as before), Segment anonymous ids or Segment
userIds. Non-user assignments get their own table (the seed's ab_test_assignments keeps its NOT NULL
foreign key to users); identify/alias links and the link job's watermark are experiments' own tables
(docs/schema.md, docs/experiment-units.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.add_column(
        "ab_tests", sa.Column("unit", sa.String(length=20), server_default=sa.text("'user'"), nullable=False)
    )
    op.create_table(
        "experiment_unit_assignments",
        sa.Column("assignment_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("unit_type", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.String(length=255), nullable=False),
        sa.Column("assigned_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.Column("converted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("converted_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("phase", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_experiment_unit_assignments_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_test_variants.variant_id"],
            name=op.f("fk_experiment_unit_assignments_variant_id_ab_test_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_experiment_unit_assignments")),
        sa.UniqueConstraint("test_id", "unit_id", name="uq_experiment_unit_assignments_test_id_unit_id"),
    )
    op.create_index(
        "ix_experiment_unit_assignments_test_id_assigned_at",
        "experiment_unit_assignments",
        ["test_id", "assigned_at"],
    )
    op.create_index(
        op.f("ix_experiment_unit_assignments_variant_id"), "experiment_unit_assignments", ["variant_id"]
    )
    op.create_table(
        "experiment_identity_links",
        sa.Column("anonymous_id", sa.String(length=255), nullable=False),
        sa.Column("external_user_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("linked_at", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("anonymous_id", "external_user_id", name="pk_experiment_identity_links"),
    )
    op.create_index(
        "ix_experiment_identity_links_external_user_id", "experiment_identity_links", ["external_user_id"]
    )
    op.create_index("ix_experiment_identity_links_user_id", "experiment_identity_links", ["user_id"])
    op.create_table(
        "experiment_watermarks",
        sa.Column("job", sa.String(length=50), nullable=False),
        sa.Column("ingested_through", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_experiment_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("experiment_watermarks")
    op.drop_index("ix_experiment_identity_links_user_id", table_name="experiment_identity_links")
    op.drop_index("ix_experiment_identity_links_external_user_id", table_name="experiment_identity_links")
    op.drop_table("experiment_identity_links")
    op.drop_index(op.f("ix_experiment_unit_assignments_variant_id"), table_name="experiment_unit_assignments")
    op.drop_index(
        "ix_experiment_unit_assignments_test_id_assigned_at", table_name="experiment_unit_assignments"
    )
    op.drop_table("experiment_unit_assignments")
    op.drop_column("ab_tests", "unit")
