"""Partition upkeep: premade partitions, a drained default partition, purges, plan and single runner."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from kernel.db import Database
from retention import jobs
from retention.errors import RetentionBusy
from retention.schemas import RetentionPolicy
from tests.integration.retention.conftest import insert_events, partition_names

POLICY = RetentionPolicy(purge_batch_size=3)


async def test_premakes_partitions_ahead_of_now(rdb: Database) -> None:
    now = dt.date(2031, 5, 17)
    actions = await jobs.run(rdb, now, POLICY, upkeep_only=True)
    assert [(a.action, a.target, a.status) for a in actions] == [
        ("create_partition", m, "done") for m in ("2031-05", "2031-06", "2031-07", "2031-08")
    ]
    for parent in ("analytics_events", "event_properties"):
        names = await partition_names(rdb, parent)
        assert {f"{parent}_p2031_0{m}" for m in (5, 6, 7, 8)} <= names
    # An event in a premade month routes to it, not to the default.
    await insert_events(rdb, [dt.datetime(2031, 6, 1, 0, 0)])
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_p2031_06") == 1
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_default") == 0
    # Idempotent: a second run finds nothing to create.
    assert await jobs.run(rdb, now, POLICY, upkeep_only=True) == []


async def test_default_partition_is_drained_by_a_later_run(rdb: Database) -> None:
    old = [dt.datetime(2019, 3, 5, 12), dt.datetime(2019, 3, 31, 23, 59, 59), dt.datetime(2019, 4, 1)]
    await insert_events(rdb, old, props=3)
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_default") == 3
    assert await rdb.fetchval("SELECT count(*) FROM event_properties_default") == 9

    # A run while those months are retained (upkeep leaves older months alone: test_out_of_window).
    actions = await jobs.run(rdb, dt.date(2019, 5, 20), POLICY, upkeep_only=True)
    drains = {a.target: a.rows for a in actions if a.action == "drain_default"}
    assert drains == {"2019-03": 2, "2019-04": 1}

    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_default") == 0
    assert await rdb.fetchval("SELECT count(*) FROM event_properties_default") == 0
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_p2019_03") == 2
    assert await rdb.fetchval("SELECT count(*) FROM event_properties_p2019_03") == 6
    assert await rdb.fetchval("SELECT count(*) FROM event_properties_p2019_04") == 3
    # Nothing lost, nothing orphaned, and the indexes came along.
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events") == 3
    orphans = await rdb.fetchval(
        """SELECT count(*) FROM event_properties p LEFT JOIN analytics_events e
           ON e.event_id = p.event_id AND e."timestamp" = p."timestamp" WHERE e.event_id IS NULL"""
    )
    assert orphans == 0
    # Every index of the parent exists on the new partition, whatever indexes later migrations add.
    idx = await rdb.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'analytics_events_p2019_03'")
    parent = await rdb.fetchval(
        """SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = 'analytics_events'::regclass"""
    )
    assert idx == parent >= 5
    # The ledger recorded both drains.
    ledger = await rdb.pool.fetch(
        "SELECT action, target, rows FROM retention_actions WHERE action = 'drain_default'"
    )
    assert {(r["target"], r["rows"]) for r in ledger} == {("2019-03", 2), ("2019-04", 1)}


async def test_audit_and_log_rows_older_than_six_months_are_purged(rdb: Database) -> None:
    now = dt.date(2026, 11, 26)
    old, recent = dt.datetime(2026, 5, 25), dt.datetime(2026, 5, 27)
    async with rdb.transaction() as conn:
        for ts in [old] * 7 + [recent] * 2:
            await conn.execute("INSERT INTO audit_log (action, created_at) VALUES ('login', $1)", ts)
        wh = await conn.fetchval(
            "INSERT INTO webhooks (client_id, event_type, target_url, secret) VALUES ('c', 'e', 'http://x', 's') RETURNING webhook_id"
        )
        for ts in (old, recent):
            await conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event_type, payload, queued_at) VALUES ($1, 'e', '{}', $2)",
                wh,
                ts,
            )
        wf = await conn.fetchval(
            "INSERT INTO workflows (name, definition, trigger_type) VALUES ('w', '{}', 'manual') RETURNING workflow_id"
        )
        for ts in (old, recent):
            ex = await conn.fetchval(
                "INSERT INTO workflow_executions (workflow_id, started_at) VALUES ($1, $2) RETURNING execution_id",
                wf,
                ts,
            )
            await conn.execute(
                "INSERT INTO workflow_execution_steps (execution_id, step_name, step_type, started_at) VALUES ($1, 's', 't', $2)",
                ex,
                ts,
            )

    actions = await jobs.run(rdb, now, POLICY)
    purged = {a.target: a.rows for a in actions if a.action == "purge"}
    assert purged == {
        "audit_log": 7,
        "webhook_deliveries": 1,
        "workflow_execution_steps": 1,
        "workflow_executions": 1,
    }
    for table, column in (
        ("audit_log", "created_at"),
        ("webhook_deliveries", "queued_at"),
        ("workflow_executions", "started_at"),
        ("workflow_execution_steps", "started_at"),
    ):
        rows = await rdb.pool.fetch(f"SELECT {column} AS t FROM {table}")
        assert rows, table
        assert all(r["t"] == recent for r in rows), table


async def test_plan_changes_nothing(rdb: Database) -> None:
    await insert_events(rdb, [dt.datetime(2018, 1, 2), dt.datetime(2030, 6, 2)])
    async with rdb.transaction() as conn:
        await conn.execute("INSERT INTO audit_log (action, created_at) VALUES ('login', '2001-01-01')")

    async def state() -> tuple[object, ...]:
        return (
            await partition_names(rdb, "analytics_events"),
            await partition_names(rdb, "event_properties"),
            await rdb.fetchval("SELECT count(*) FROM analytics_events_default"),
            await rdb.fetchval("SELECT count(*) FROM audit_log"),
            await rdb.fetchval("SELECT count(*) FROM retention_actions"),
        )

    before = await state()
    actions = await jobs.plan(rdb, dt.date(2031, 1, 10), POLICY)
    assert await state() == before
    kinds = {(a.action, a.target) for a in actions}
    assert ("drain_default", "2030-06") in kinds
    assert ("create_partition", "2031-01") in kinds
    assert ("purge", "audit_log") in kinds
    # 2018 is before the oldest retained month (2029-01): reported as what the run will skip.
    assert [(a.action, a.target, a.rows, a.status) for a in actions if a.status != "planned"] == [
        ("out_of_window", "before 2029-01", 1, "skipped")
    ]


async def test_only_one_runner_at_a_time(rdb: Database) -> None:
    results = await asyncio.gather(
        *(jobs.run(rdb, dt.date(2032, 1, 1), POLICY, upkeep_only=True) for _ in range(3)),
        return_exceptions=True,
    )
    busy = [r for r in results if isinstance(r, RetentionBusy)]
    done = [r for r in results if isinstance(r, list)]
    assert len(done) >= 1
    assert len(busy) + len(done) == 3
    created = [a for r in done for a in r if a.action == "create_partition"]
    assert len(created) == 4  # each month created exactly once


def test_policy_rejects_raw_window_shorter_than_aggregation() -> None:
    with pytest.raises(ValueError, match="raw data"):
        RetentionPolicy(aggregate_after_months=12, raw_retention_months=6)


async def test_plan_shows_each_partitions_raw_rows_beside_the_finalised_count(rdb: Database) -> None:
    """A month past the raw window whose days were never finalised: the plan says how many rows the drop
    would remove (it said 0, the finalised count, for a partition holding 2,020 events)."""
    await jobs.run(rdb, dt.date(2030, 7, 1), POLICY, upkeep_only=True)
    await insert_events(rdb, [dt.datetime(2030, 7, d) for d in (1, 2, 3)], props=2)
    actions = await jobs.plan(rdb, dt.date(2032, 9, 10), POLICY)
    drops = {a.target: a for a in actions if a.action == "drop_partition"}
    events = drops["analytics_events_p2030_07"]
    assert events.rows == 3
    assert "0 events finalised" in events.reason
    assert drops["event_properties_p2030_07"].rows == 6
