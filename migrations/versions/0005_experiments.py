"""Experiments: variant order and control, traffic phases, per-phase weights.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ab_tests", sa.Column("phase", sa.SmallInteger(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column(
        "ab_test_variants",
        sa.Column("position", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "ab_test_variants",
        sa.Column("is_control", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "ab_test_assignments",
        sa.Column("phase", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
    )
    # Rows written before this revision: order variants by creation, the first one is the control.
    op.execute(
        """
        UPDATE ab_test_variants v SET position = o.pos, is_control = (o.pos = 0)
        FROM (SELECT variant_id,
                     row_number() OVER (PARTITION BY test_id ORDER BY created_at, name) - 1 AS pos
              FROM ab_test_variants) o
        WHERE o.variant_id = v.variant_id
        """
    )
    op.create_unique_constraint(
        "uq_ab_test_variants_test_id_position", "ab_test_variants", ["test_id", "position"]
    )
    op.create_index(
        "uq_ab_test_variants_control",
        "ab_test_variants",
        ["test_id"],
        unique=True,
        postgresql_where=sa.text("is_control"),
    )
    op.create_table(
        "ab_test_variant_weights",
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("phase", sa.SmallInteger(), nullable=False),
        sa.Column("traffic_percentage", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_test_variants.variant_id"],
            name=op.f("fk_ab_test_variant_weights_variant_id_ab_test_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("variant_id", "phase", name="pk_ab_test_variant_weights"),
    )
    op.execute(
        """
        INSERT INTO ab_test_variant_weights (variant_id, phase, traffic_percentage)
        SELECT variant_id, 1, traffic_percentage FROM ab_test_variants
        """
    )


def downgrade() -> None:
    op.drop_table("ab_test_variant_weights")
    op.drop_index("uq_ab_test_variants_control", table_name="ab_test_variants")
    op.drop_constraint("uq_ab_test_variants_test_id_position", "ab_test_variants", type_="unique")
    op.drop_column("ab_test_assignments", "phase")
    op.drop_column("ab_test_variants", "is_control")
    op.drop_column("ab_test_variants", "position")
    op.drop_column("ab_tests", "phase")
