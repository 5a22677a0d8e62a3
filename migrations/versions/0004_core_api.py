"""Core API: login throttle table, device-token upsert key, notification list and due-scan indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("throttle_key", sa.String(length=100), nullable=False),
        sa.Column("window_start", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("throttle_key", name=op.f("pk_login_throttle")),
    )
    op.create_index("ix_login_throttle_window_start", "login_throttle", ["window_start"], unique=False)
    op.create_index(
        "uq_user_devices_user_id_device_token", "user_devices", ["user_id", "device_token"], unique=True
    )
    op.create_index(
        "ix_notifications_user_id_created_at",
        "notifications",
        ["user_id", "created_at", "notification_id"],
        unique=False,
    )
    op.create_index(
        "ix_scheduled_notifications_due",
        "scheduled_notifications",
        ["scheduled_time"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_scheduled_notifications_due", table_name="scheduled_notifications")
    op.drop_index("ix_notifications_user_id_created_at", table_name="notifications")
    op.drop_index("uq_user_devices_user_id_device_token", table_name="user_devices")
    op.drop_index("ix_login_throttle_window_start", table_name="login_throttle")
    op.drop_table("login_throttle")
