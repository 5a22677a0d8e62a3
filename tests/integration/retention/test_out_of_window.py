"""Upkeep cannot be driven by clients: rows outside its window, or partitions with bounds Python cannot
hold, are reported and left alone, and one bad row or partition never stops a run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import asyncpg
from litestar.testing import AsyncTestClient

from corp_astro.app import create_app
from ingest import service as ingest_service
from kernel.db import Database
from retention import jobs
from retention.schemas import Action, RetentionPolicy, add_months
from tests.conftest import make_settings
from tests.integration.retention.conftest import insert_events, partition_names

POLICY = RetentionPolicy(purge_batch_size=3)
NOW = dt.date(2031, 5, 17)  # window: 2029-05 (oldest retained month) .. 2031-08 (last premade)
PREMADE = [("create_partition", m, "done") for m in ("2031-05", "2031-06", "2031-07", "2031-08")]


async def _insert_raw(db: Database, *timestamps: str) -> None:
    """One event with one property per timestamp, given as PostgreSQL text (BC, 20000, infinity...)."""
    async with db.transaction() as conn:
        for ts in timestamps:
            await conn.execute(
                """WITH e AS (
                     INSERT INTO analytics_events (event_id, event_name, event_category, "timestamp", anonymous_id)
                     VALUES (gen_random_uuid(), 'tap', 'track', $1::text::timestamp, 'anon-1')
                     RETURNING event_id, "timestamp")
                   INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
                   SELECT gen_random_uuid(), event_id, 'p', 'v', "timestamp" FROM e""",
                ts,
            )


async def _children(db: Database) -> set[str]:
    return await partition_names(db, "analytics_events") | await partition_names(db, "event_properties")


def _by_action(actions: list[Action], name: str) -> dict[str, Action]:
    return {a.target: a for a in actions if a.action == name}


async def test_year_999_bc_and_year_20000_rows_do_not_stop_upkeep_or_the_run(rdb: Database) -> None:
    # The row the reproduced finding left in the default partition (an event in June 999), which made
    # every run fail on strptime("999-06"), and one in the window, still drained as before.
    await _insert_raw(rdb, "0999-06-15 00:00:00")
    await insert_events(rdb, [dt.datetime(2030, 2, 3, 4)], props=1)

    actions = await jobs.run(rdb, NOW, POLICY, upkeep_only=True)
    assert [(a.action, a.target, a.status) for a in actions if a.action == "create_partition"] == PREMADE
    assert [(a.target, a.rows, a.status) for a in actions if a.action == "drain_default"] == [
        ("2030-02", 1, "done")
    ]
    report = _by_action(actions, "out_of_window")["before 2029-05"]
    assert (report.status, report.rows) == ("skipped", 1)
    assert (
        "1 events and 1 properties in 1 months (0999-06-15 00:00:00 .. 0999-06-15 00:00:00)" in report.reason
    )
    full = await jobs.run(rdb, NOW, POLICY)
    assert not [a for a in full if a.status == "failed"]
    assert [a.target for a in full if a.action == "out_of_window"] == ["before 2029-05"]

    # Times asyncpg cannot even decode: BC, past 9999, infinity.
    await _insert_raw(rdb, "0044-03-15 00:00:00 BC", "20000-01-01 00:00:00", "infinity")
    later = dt.date(2031, 9, 2)  # window: 2029-09 .. 2031-12
    actions = await jobs.run(rdb, later, POLICY, upkeep_only=True)
    created = [a.target for a in actions if a.action == "create_partition" and a.status == "done"]
    assert created == ["2031-09", "2031-10", "2031-11", "2031-12"]
    outside = _by_action(actions, "out_of_window")
    assert set(outside) == {"before 2029-09", "after 2031-12"}
    before, after = outside["before 2029-09"], outside["after 2031-12"]
    assert (before.status, before.rows, after.status, after.rows) == ("skipped", 2, "skipped", 2)
    assert (
        "2 events and 2 properties in 2 months (0044-03-15 00:00:00 BC .. 0999-06-15 00:00:00)"
        in before.reason
    )
    assert "(20000-01-01 00:00:00 .. infinity)" in after.reason
    # Left where they were, with no partition made for them; the ledger has the reports.
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_default") == 4
    assert await rdb.fetchval("SELECT count(*) FROM event_properties_default") == 4
    assert not any(("0999" in n or "20000" in n or "0044" in n) for n in await _children(rdb))
    ledger = await rdb.pool.fetch(
        "SELECT target, status, rows FROM retention_actions WHERE action = 'out_of_window'"
    )
    # (The first full run purged the earlier ledger rows: their started_at is years before the fake clock.)
    assert {(r["target"], r["status"], r["rows"]) for r in ledger} == {
        ("before 2029-09", "skipped", 2),
        ("after 2031-12", "skipped", 2),
    }

    # The full run and the plan complete too, and say the same; nothing failed.
    full = await jobs.run(rdb, later, POLICY)
    assert not [a for a in full if a.status == "failed"]
    assert set(_by_action(full, "out_of_window")) == {"before 2029-09", "after 2031-12"}
    planned = await jobs.plan(rdb, later, POLICY)
    assert set(_by_action(planned, "out_of_window")) == {"before 2029-09", "after 2031-12"}


async def test_partitions_with_bounds_python_cannot_hold_are_reported_and_left_alone(rdb: Database) -> None:
    odd = {
        "analytics_events_ancient": "FROM (MINVALUE) TO ('0100-01-01 BC')",
        "event_properties_ancient": "FROM (MINVALUE) TO ('0100-01-01 BC')",
        "analytics_events_bc": "FROM ('0050-01-01 BC') TO ('0040-01-01 BC')",
        "analytics_events_far": "FROM ('50000-01-01') TO ('infinity')",
        "analytics_events_max": "FROM ('infinity') TO (MAXVALUE)",
    }
    async with rdb.transaction() as conn:
        for name, bounds in odd.items():
            parent = name.rsplit("_", 1)[0]
            await conn.execute(f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES {bounds}")
    # And one Python can hold, in year 999: finalised and dropped like any month past the raw window.
    async with rdb.transaction() as conn:
        for parent in ("analytics_events", "event_properties"):
            await conn.execute(
                f"CREATE TABLE {parent}_p0999_06 PARTITION OF {parent} FOR VALUES FROM ('0999-06-01') TO ('0999-07-01')"
            )
    await _insert_raw(rdb, "0045-06-01 00:00:00 BC", "60000-01-01 00:00:00", "0999-06-15 00:00:00")

    for upkeep_only in (True, False):
        actions = await jobs.run(rdb, NOW, POLICY, upkeep_only=upkeep_only)
        reported = _by_action(actions, "odd_partition")
        assert set(reported) == set(odd)
        assert {a.status for a in reported.values()} == {"skipped"}
        assert "MINVALUE" in reported["analytics_events_ancient"].reason
        assert not [a for a in actions if a.status == "failed"]
    dropped = {a.target: a.status for a in actions if a.action == "drop_partition" and "0999" in a.target}
    assert dropped == {"analytics_events_p0999_06": "done", "event_properties_p0999_06": "done"}
    finalised = {a.target: a.status for a in actions if a.action == "finalise_month"}
    assert finalised["0999-06"] == "done"
    planned = await jobs.plan(rdb, NOW, POLICY)
    assert set(_by_action(planned, "odd_partition")) == set(odd)
    assert not [a for a in planned if a.action in ("create_partition", "drain_default")]  # all made
    assert set(odd) <= await _children(rdb)
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events") == 2


async def test_a_month_that_fails_is_recorded_and_the_others_still_run(rdb: Database) -> None:
    # A table squatting on the name upkeep would give June 2031 makes that one month fail.
    async with rdb.transaction() as conn:
        await conn.execute("CREATE TABLE event_properties_p2031_06 (x int)")
    await insert_events(rdb, [dt.datetime(2030, 1, 5)])
    actions = await jobs.run(rdb, NOW, POLICY, upkeep_only=True)
    status = {(a.action, a.target): a.status for a in actions}
    assert status == {
        ("drain_default", "2030-01"): "done",
        ("create_partition", "2031-05"): "done",
        ("create_partition", "2031-06"): "failed",
        ("create_partition", "2031-07"): "done",
        ("create_partition", "2031-08"): "done",
    }
    failed = next(a for a in actions if a.status == "failed")
    assert "DuplicateTableError" in failed.reason
    ledger = await rdb.pool.fetch("SELECT target FROM retention_actions WHERE status = 'failed'")
    assert [r["target"] for r in ledger] == ["2031-06"]


def _fifties(i: int) -> str:
    return f"{1950 + i // 12}-{i % 12 + 1:02d}-15T12:00:00Z"


async def _child_count(db: Database) -> int:
    n: int = await db.fetchval(
        """SELECT count(*) FROM pg_inherits
           WHERE inhparent IN ('analytics_events'::regclass, 'event_properties'::regclass)"""
    )
    return n


async def test_a_write_key_cannot_make_upkeep_create_partitions(
    rdb: Database, rdb_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(rdb_url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        async with conn.transaction():
            created = await ingest_service.create_source(conn, "attacker")
    finally:
        await conn.close()
    today = dt.datetime.now(dt.UTC).date()
    premade = [add_months(today, i) for i in range(4)]
    allowed = {
        f"{p}_p{m.year:04d}_{m.month:02d}" for m in premade for p in ("analytics_events", "event_properties")
    }
    before, count_before = await _children(rdb), await _child_count(rdb)

    # The reproduced finding: one batch, 120 distinct months of 1950-1959 (it made upkeep create 240).
    batch = [
        {"type": "track", "event": "x", "anonymousId": "a", "messageId": f"m{i}", "timestamp": _fifties(i)}
        for i in range(120)
    ]
    batch.append({"type": "track", "event": "x", "anonymousId": "a", "messageId": "now"})
    async with AsyncTestClient(app=create_app(make_settings(rdb_url, tmp_path))) as client:
        r = await client.post("/v1/batch", json={"batch": batch}, auth=(created.write_key, ""))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1
    assert [(e["index"], e["reason"]) for e in body["rejected"]] == [
        (i, "timestamp_out_of_range") for i in range(120)
    ]
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events WHERE \"timestamp\" < '2000-01-01'") == 0
    await jobs.run(rdb, today, RetentionPolicy(), upkeep_only=True)
    assert await _children(rdb) - before <= allowed
    assert await _child_count(rdb) - count_before <= len(allowed)

    # The same months written by hand (as a bypass would) are reported, not given partitions.
    await _insert_raw(rdb, *(_fifties(i).replace("T", " ").rstrip("Z") for i in range(120)))
    actions = await jobs.run(rdb, today, RetentionPolicy(), upkeep_only=True)
    actions += await jobs.run(rdb, today, RetentionPolicy())
    assert await _children(rdb) - before <= allowed
    assert await _child_count(rdb) - count_before <= len(allowed)
    assert not any("_p195" in n for n in await _children(rdb))
    outside = _by_action(actions, "out_of_window")
    oldest = add_months(today, -24)
    report = outside[f"before {oldest.year:04d}-{oldest.month:02d}"]
    assert (report.status, report.rows) == ("skipped", 120)
    assert "in 120 months (1950-01-15 12:00:00 .. 1959-12-15 12:00:00)" in report.reason
    assert await rdb.fetchval("SELECT count(*) FROM analytics_events_default") == 120
