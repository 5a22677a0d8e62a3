"""Ingest: the exactly-once ledger partitioned by arrival week.

``ingest_message_ids`` becomes ``(event_id, week)``, range-partitioned by ``week`` (the Monday of the
arrival date; one partition a week, and a default partition that catches any week without one). The
BRIN index and ``first_seen_at`` go: a week past the dedupe window is dropped whole by partition upkeep
instead of deleted row by row. The rows of the old table move with their first week, so the dedupe
window carries over the upgrade.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_THIS_WEEK = "(date_trunc('week'::text, (now() AT TIME ZONE 'UTC'::text)))::date"
# The partitions made here: the weeks of the 7-day window and one day more, through two weeks ahead
# (partition upkeep keeps this up from then on: retention's hourly run, ingest.ledger.keep_partitions).
_BACK_DAYS, _AHEAD_WEEKS = 8, 2


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def upgrade() -> None:
    op.rename_table("ingest_message_ids", "ingest_message_ids_0003")
    op.execute(
        "ALTER TABLE ingest_message_ids_0003 RENAME CONSTRAINT pk_ingest_message_ids TO pk_ingest_message_ids_0003"
    )
    op.create_table(
        "ingest_message_ids",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("week", sa.Date(), server_default=sa.text(_THIS_WEEK), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "week", name=op.f("pk_ingest_message_ids")),
        postgresql_partition_by="RANGE (week)",
    )
    op.execute("CREATE TABLE ingest_message_ids_default PARTITION OF ingest_message_ids DEFAULT")
    today = op.get_bind().execute(sa.text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    week = _monday(today - dt.timedelta(days=_BACK_DAYS))
    while week <= _monday(today) + dt.timedelta(weeks=_AHEAD_WEEKS):
        op.execute(
            f"CREATE TABLE ingest_message_ids_p{week:%Y_%m_%d} PARTITION OF ingest_message_ids "
            f"FOR VALUES FROM ('{week}') TO ('{week + dt.timedelta(weeks=1)}')"
        )
        week += dt.timedelta(weeks=1)
    op.execute(
        "INSERT INTO ingest_message_ids (event_id, week) "
        "SELECT event_id, date_trunc('week', first_seen_at)::date FROM ingest_message_ids_0003"
    )
    op.drop_table("ingest_message_ids_0003")


def downgrade() -> None:
    op.rename_table("ingest_message_ids", "ingest_message_ids_0017")
    op.execute(
        "ALTER TABLE ingest_message_ids_0017 RENAME CONSTRAINT pk_ingest_message_ids TO pk_ingest_message_ids_0017"
    )
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
    # One row per id (an id can be in two weeks' partitions): its first week.
    op.execute(
        "INSERT INTO ingest_message_ids (event_id, first_seen_at) "
        "SELECT event_id, min(week)::timestamp FROM ingest_message_ids_0017 GROUP BY event_id"
    )
    op.drop_table("ingest_message_ids_0017")
