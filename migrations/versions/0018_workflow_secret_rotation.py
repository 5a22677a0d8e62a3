"""Workflows rotate their own secret (``POST /v1/workflows/{id}/rotate-secret``): during the overlap
(24 h by default) the previous secret still verifies inbound triggers, as a webhook endpoint's does
for its signatures (docs/workflows.md, "Rotating the secret").

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflows", sa.Column("previous_secret", sa.String(length=255), nullable=True))
    op.add_column("workflows", sa.Column("previous_secret_expires_at", postgresql.TIMESTAMP(), nullable=True))


def downgrade() -> None:
    for column in ("previous_secret_expires_at", "previous_secret"):
        op.drop_column("workflows", column)
