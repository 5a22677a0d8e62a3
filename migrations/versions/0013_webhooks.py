"""Webhooks: the kernel's event outbox, and what delivery needs on the seed's webhook tables.

- ``event_outbox`` (kernel): events recorded in the transaction of the change that caused them
  (``kernel.events.emit``); the integrations dispatcher moves them into ``webhook_deliveries``.
- ``webhooks``: the previous secret during a rotation (both sign for 24 h), and since when the
  endpoint has failed without a success (disabled after 5 days).
- ``webhook_deliveries``: the event (the ``webhook-id`` every attempt sends), the attempt count, when
  the next attempt is due, and the lease of the process sending it (a crash mid-send is retried).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("event_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_outbox")),
    )
    op.create_table(
        "event_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_event_keys")),
    )
    op.add_column("webhooks", sa.Column("previous_secret", sa.String(length=255), nullable=True))
    op.add_column("webhooks", sa.Column("previous_secret_expires_at", postgresql.TIMESTAMP(), nullable=True))
    op.add_column("webhooks", sa.Column("failing_since", postgresql.TIMESTAMP(), nullable=True))
    # Existing rows (and any inserted without an event) get an id of their own.
    op.add_column(
        "webhook_deliveries",
        sa.Column("event_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    )
    op.add_column(
        "webhook_deliveries",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "webhook_deliveries",
        sa.Column("next_attempt_at", postgresql.TIMESTAMP(), server_default=_NOW, nullable=False),
    )
    op.add_column("webhook_deliveries", sa.Column("locked_until", postgresql.TIMESTAMP(), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_leased",
        "webhook_deliveries",
        ["webhook_id", "locked_until"],
        unique=False,
        postgresql_where=sa.text("status = 'processing'"),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_queued_at",
        "webhook_deliveries",
        ["webhook_id", "queued_at", "delivery_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_webhook_id_queued_at", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_leased", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    for column in ("locked_until", "next_attempt_at", "attempts", "event_id"):
        op.drop_column("webhook_deliveries", column)
    for column in ("failing_since", "previous_secret_expires_at", "previous_secret"):
        op.drop_column("webhooks", column)
    op.drop_table("event_keys")
    op.drop_table("event_outbox")
