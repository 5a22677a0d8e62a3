"""Ingest: the exactly-once ledger, and the seed's event_properties -> analytics_events FK removed.

That foreign key's per-row trigger cuts binary COPY throughput about 3x (docs/schema.md, "## Ingest"); the
ingest pipeline writes properties only in their event's transaction instead.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_message_ids",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column(
            "first_seen_at",
            postgresql.TIMESTAMP(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ingest_message_ids")),
    )
    op.create_index(
        "ix_ingest_message_ids_first_seen_at",
        "ingest_message_ids",
        ["first_seen_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.drop_constraint(
        "fk_event_properties_event_id_analytics_events", "event_properties", type_="foreignkey"
    )


def downgrade() -> None:
    # Rows written without the trigger could violate the constraint; drop those rather than fail.
    op.execute(
        "DELETE FROM event_properties p WHERE NOT EXISTS "
        '(SELECT 1 FROM analytics_events e WHERE e.event_id = p.event_id AND e."timestamp" = p."timestamp")'
    )
    op.create_foreign_key(
        "fk_event_properties_event_id_analytics_events",
        "event_properties",
        "analytics_events",
        ["event_id", "timestamp"],
        ["event_id", "timestamp"],
        ondelete="CASCADE",
    )
    op.drop_index(
        "ix_ingest_message_ids_first_seen_at", table_name="ingest_message_ids", postgresql_using="brin"
    )
    op.drop_table("ingest_message_ids")
