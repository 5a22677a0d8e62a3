"""Auth hardening: throttle backoff, token generations, emails in their normal form.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core_api.accounts.emails import normalize_email

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_log = logging.getLogger("alembic.runtime.migration")


def _normalise_emails() -> None:
    """Store every email in its normal form. An address that does not normalise, or whose normal form
    another (older) account already has, is left as it was and logged: it can no longer sign in by
    that spelling, and an admin must settle it; no account is merged or dropped here."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT user_id, email FROM users ORDER BY created_at, user_id")).all()
    taken = {email for _, email in rows}
    for user_id, email in rows:
        try:
            normal = normalize_email(email)
        except ValueError:
            _log.warning("email left as it was: it does not normalise (user %s)", user_id)
            continue
        if normal == email:
            continue
        if normal in taken:
            _log.warning(
                "email left as it was: its normal form belongs to another account (user %s)", user_id
            )
            continue
        conn.execute(sa.text("UPDATE users SET email = :e WHERE user_id = :u"), {"e": normal, "u": user_id})
        taken.discard(email)
        taken.add(normal)


def upgrade() -> None:
    op.add_column("login_throttle", sa.Column("blocked_until", postgresql.TIMESTAMP(), nullable=True))
    op.create_table(
        "user_token_versions",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_user_token_versions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_token_versions")),
    )
    _normalise_emails()


def downgrade() -> None:
    op.drop_table("user_token_versions")
    op.drop_column("login_throttle", "blocked_until")
