"""Partition upkeep keeps ingest's dedupe ledger too: a week partition dropped by hand is made again."""

from __future__ import annotations

import datetime as dt

from kernel.db import Database
from retention import jobs
from retention.schemas import RetentionPolicy


async def test_upkeep_remakes_a_missing_ledger_week_and_records_it(rdb: Database) -> None:
    monday: dt.date = await rdb.fetchval("SELECT date_trunc('week', now() AT TIME ZONE 'UTC')::date")
    week = monday + dt.timedelta(weeks=1)
    name = f"ingest_message_ids_p{week:%Y_%m_%d}"
    async with rdb.transaction() as conn:
        await conn.execute(f"DROP TABLE {name}")
        await conn.execute(
            "INSERT INTO ingest_message_ids (message_key, week) VALUES (gen_random_uuid(), $1)", week
        )
    # The run's clock (--now) is not the ledger's: its weeks follow the database's clock.
    actions = await jobs.run(rdb, dt.date(2031, 5, 17), RetentionPolicy(), upkeep_only=True)
    ledger = [a for a in actions if a.action == "ledger_partitions"]
    assert [(a.target, a.status, a.rows) for a in ledger] == [("ingest_message_ids", "done", 1)]
    assert await rdb.fetchval(f"SELECT count(*) FROM {name}") == 1
    assert await rdb.fetchval("SELECT count(*) FROM ingest_message_ids_default") == 0
    recorded = await rdb.fetchval("SELECT count(*) FROM retention_actions WHERE action = 'ledger_partitions'")
    assert recorded == 1
    again = await jobs.run(rdb, dt.date(2031, 5, 17), RetentionPolicy(), upkeep_only=True)
    assert [a for a in again if a.action == "ledger_partitions"] == []
