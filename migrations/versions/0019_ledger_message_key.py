"""The exactly-once ledger's key column is ``message_key``: an event's ``event_id`` is now a time-ordered
UUIDv7 made at ingest, no longer uuid5(source_id, messageId), so the ledger's uuid5 is no longer the
event's id. The values are unchanged (the key was always the uuid5); only the name says what it is.

Random (uuid5) event ids put 6 of an event's index insertions at random pages (the events' primary key,
the properties' event_id index), and PostgreSQL's CPU per event grew with the tables (docs/ingest.md,
"Time-ordered ids"); time-ordered ids land at the indexes' right edge.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On a partitioned table the rename reaches every partition (and the default) at once.
    op.alter_column("ingest_message_ids", "event_id", new_column_name="message_key")


def downgrade() -> None:
    op.alter_column("ingest_message_ids", "message_key", new_column_name="event_id")
