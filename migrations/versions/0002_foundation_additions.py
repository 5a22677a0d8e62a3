"""Foundation additions beyond the seed: audit log, event sources (write keys), Segment identity columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENT_COLUMNS = (
    ("source_id", sa.UUID()),
    ("message_id", sa.String(length=255)),
    ("external_user_id", sa.String(length=255)),
    ("anonymous_id", sa.String(length=255)),
    ("received_at", postgresql.TIMESTAMP()),
)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("actor_user_id", sa.UUID(), nullable=True),
        sa.Column("subject_id", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("ip_address", postgresql.INET(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"], unique=False)
    op.create_index("ix_audit_log_actor_user_id", "audit_log", ["actor_user_id"], unique=False)
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"], unique=False)
    op.create_table(
        "api_sources",
        sa.Column("source_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("revoked_at", postgresql.TIMESTAMP(), nullable=True),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_api_sources")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_sources_key_hash")),
    )
    for name, type_ in _EVENT_COLUMNS:
        op.add_column("analytics_events", sa.Column(name, type_, nullable=True))
    op.add_column("ab_tests", sa.Column("goal_event", sa.String(length=100), nullable=True))
    op.create_unique_constraint("uq_ab_test_variants_test_id_name", "ab_test_variants", ["test_id", "name"])


def downgrade() -> None:
    op.drop_constraint("uq_ab_test_variants_test_id_name", "ab_test_variants", type_="unique")
    op.drop_column("ab_tests", "goal_event")
    for name, _ in reversed(_EVENT_COLUMNS):
        op.drop_column("analytics_events", name)
    op.drop_table("api_sources")
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_user_id", table_name="audit_log")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_table("audit_log")
