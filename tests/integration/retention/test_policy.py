"""The seed's policy with a fake clock: finalise at 12 months, drop raw at 24, never drop unrolled data."""

from __future__ import annotations

import datetime as dt

import pytest

import aggregation
from kernel.db import Database
from retention import jobs
from retention.schemas import RetentionPolicy
from tests.integration.retention.conftest import insert_events, partition_names

POLICY = RetentionPolicy()

# Events across month boundaries, 2024-09 .. 2026-11. With now = 2026-11-26 the raw window ends at
# 2024-11-26 and the aggregation window at 2025-11-26.
TIMES = [
    dt.datetime(2024, 9, 15, 10),
    dt.datetime(2024, 10, 31, 23, 59, 59),
    dt.datetime(2024, 11, 1, 0, 0),
    dt.datetime(2024, 11, 30, 12),
    dt.datetime(2025, 6, 10, 8),
    dt.datetime(2025, 10, 31, 23),
    dt.datetime(2025, 11, 1, 1),
    dt.datetime(2026, 11, 20, 9),
]


async def _events_by_month(db: Database) -> dict[str, int]:
    rows = await db.pool.fetch(
        """SELECT to_char("timestamp", 'YYYY-MM') m, count(*) n FROM analytics_events GROUP BY 1 ORDER BY 1"""
    )
    return {r["m"]: r["n"] for r in rows}


async def _finalised(db: Database) -> dict[dt.date, int]:
    rows = await db.pool.fetch("SELECT day, raw_events FROM rollup_finalisations WHERE raw_events > 0")
    return {r["day"]: r["raw_events"] for r in rows}


async def test_policy_across_month_boundaries(rdb: Database) -> None:
    await insert_events(rdb, TIMES)
    # Upkeep drains a month while it is retained, as hourly upkeep did when these months were recent.
    await jobs.run(rdb, dt.date(2024, 10, 15), POLICY, upkeep_only=True)  # 2024-09 .. 2024-11
    await jobs.run(rdb, dt.date(2026, 11, 26), POLICY, upkeep_only=True)  # the later months

    actions = await jobs.run(rdb, dt.date(2026, 11, 26), POLICY)
    dropped = {a.target for a in actions if a.action == "drop_partition" and a.status == "done"}
    assert dropped == {
        "analytics_events_p2024_09",
        "event_properties_p2024_09",
        "analytics_events_p2024_10",
        "event_properties_p2024_10",
    }
    # Older than 24 months: gone. 12-24 months: raw kept, rollups finalised. Newer: untouched.
    assert await _events_by_month(rdb) == {
        "2024-11": 2,
        "2025-06": 1,
        "2025-10": 1,
        "2025-11": 1,
        "2026-11": 1,
    }
    finalised = await _finalised(rdb)
    for ts in TIMES[:6]:
        assert finalised[ts.date()] == 1, ts
    assert dt.date(2025, 11, 1) not in finalised  # inside the aggregation window: still open
    # Properties went with their events; none orphaned.
    assert await rdb.fetchval("SELECT count(*) FROM event_properties") == 2 * 6

    # A month later the clock crosses into December: November 2024 goes, its rollups stay.
    actions = await jobs.run(rdb, dt.date(2026, 12, 1), POLICY)
    dropped = {a.target for a in actions if a.action == "drop_partition" and a.status == "done"}
    assert dropped == {"analytics_events_p2024_11", "event_properties_p2024_11"}
    assert "2024-11" not in await _events_by_month(rdb)
    finalised = await _finalised(rdb)
    assert finalised[dt.date(2024, 11, 1)] == 1
    assert finalised[dt.date(2024, 9, 15)] == 1
    assert dt.date(2025, 11, 1) in finalised  # December: November 2025 is now past 12 months

    # Re-running changes nothing.
    again = await jobs.run(rdb, dt.date(2026, 12, 1), POLICY)
    assert [a for a in again if a.status == "done"] == []


async def test_partition_whose_rollups_fail_is_not_dropped(
    rdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_events(rdb, [dt.datetime(2024, 3, 4, 5), dt.datetime(2024, 3, 20, 6)])
    await jobs.run(rdb, dt.date(2024, 3, 26), POLICY, upkeep_only=True)  # drained while retained
    real_rollup = aggregation.rollup_day

    async def failing_rollup(db: Database, day: dt.date) -> None:
        # Fault injection: the aggregation job fails for one day (the database itself is real).
        if day == dt.date(2024, 3, 20):
            raise RuntimeError("aggregation failed")
        await real_rollup(db, day)

    monkeypatch.setattr(aggregation, "rollup_day", failing_rollup)
    actions = await jobs.run(rdb, dt.date(2026, 11, 26), POLICY)
    kept = [a for a in actions if a.action == "drop_partition" and a.target.endswith("2024_03")]
    assert {a.status for a in kept} == {"skipped"}
    assert all("2024-03-20" in a.reason for a in kept)
    assert "analytics_events_p2024_03" in await partition_names(rdb, "analytics_events")
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events") == 2
    ledger = await rdb.pool.fetch(
        "SELECT status, reason FROM retention_actions WHERE target = 'analytics_events_p2024_03'"
    )
    assert [r["status"] for r in ledger] == ["skipped"]

    # Once the rollup works again, the next run finalises the day and drops the month.
    monkeypatch.setattr(aggregation, "rollup_day", real_rollup)
    actions = await jobs.run(rdb, dt.date(2026, 11, 26), POLICY)
    assert "analytics_events_p2024_03" not in await partition_names(rdb, "analytics_events")
    assert (await _finalised(rdb))[dt.date(2024, 3, 20)] == 1


async def test_rollups_that_do_not_reconcile_block_the_drop(
    rdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insert_events(rdb, [dt.datetime(2024, 2, 10, 5)])
    await jobs.run(rdb, dt.date(2024, 2, 20), POLICY, upkeep_only=True)  # drained while retained

    async def skipped_rollup(db: Database, day: dt.date) -> None:
        return None  # fault injection: the rollup silently wrote nothing for the day

    monkeypatch.setattr(aggregation, "rollup_day", skipped_rollup)
    actions = await jobs.run(rdb, dt.date(2026, 11, 26), POLICY)
    finalise = [a for a in actions if a.action == "finalise_month" and a.target == "2024-02"]
    assert finalise[0].status == "failed"
    assert "raw 1 != rollup 0" in finalise[0].reason
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events") == 1
