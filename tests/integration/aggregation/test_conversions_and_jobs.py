"""Experiment daily counts from goal-event conversions, and exactly-once scheduling across processes.

Conversions are marked by experiments alone (docs/conversions.md); aggregation only counts them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from aggregation.jobs import JOB_IDS, register_jobs, run_conversions
from experiments.jobs import convert_goal_events
from kernel.auth import utcnow
from kernel.db import Database
from kernel.scheduler import create_scheduler
from tests.conftest import make_settings
from tests.integration.aggregation.conftest import Event, assign, create_test, create_users, insert_events

D = dt.date(2026, 3, 10)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


async def _convert(conn: asyncpg.Connection) -> int:
    """One run of experiments' goal-event job, as its scheduler runs it (in a transaction)."""
    async with conn.transaction():
        return await convert_goal_events(conn)


async def test_goal_event_conversions_counted_daily(db: Database, conn: asyncpg.Connection) -> None:
    u1, u2, u3, u4, u5 = await create_users(conn, 5)
    test_id, (control, treatment) = await create_test(conn, goal_event="purchase")
    other_test, (other_variant, _) = await create_test(conn, goal_event=None)
    a1 = await assign(conn, test_id, control, u1, at(D, 8))
    a2 = await assign(conn, test_id, treatment, u2, at(D, 8))
    a3 = await assign(conn, test_id, treatment, u3, at(D, 12))
    a4 = await assign(conn, other_test, other_variant, u4, at(D, 8))
    a5 = await assign(conn, test_id, control, u5, at(D, 8))
    # u5 was already converted (by the experiments API): its time must not move.
    await conn.execute(
        "UPDATE ab_test_assignments SET converted = true, converted_at = $2 WHERE assignment_id = $1",
        a5,
        at(D, 8, 30),
    )
    nxt = D + dt.timedelta(days=1)
    await insert_events(
        conn,
        [
            Event(at(D, 7), event_name="purchase", user_id=u1),  # before assignment: ignored
            Event(at(D, 9), event_name="purchase", user_id=u1),  # the first after assignment
            Event(at(D, 10), event_name="purchase", user_id=u1),  # later: ignored
            Event(at(nxt, 3), event_name="purchase", user_id=u2),  # converts on the next day
            Event(at(D, 13), event_name="view", user_id=u3),  # not the goal event
            Event(at(D, 13), event_name="purchase", user_id=u4),  # test without a goal event
            Event(at(D, 9), event_name="purchase", user_id=u5),
        ],
    )
    assert await _convert(conn) == 2
    results = await run_conversions(db, today=D + dt.timedelta(days=2))
    assert {(r.period.date(), r.status) for r in results if r.period.date() >= D} == {(D, "ok"), (nxt, "ok")}

    rows = {
        r["assignment_id"]: (r["converted"], r["converted_at"])
        for r in await conn.fetch("SELECT assignment_id, converted, converted_at FROM ab_test_assignments")
    }
    assert rows[a1] == (True, at(D, 9))
    assert rows[a2] == (True, at(nxt, 3))
    assert rows[a3] == (False, None)
    assert rows[a4] == (False, None)
    assert rows[a5] == (True, at(D, 8, 30))

    daily = {
        (r["variant_id"], r["day"]): (r["assigned"], r["converted"])
        for r in await conn.fetch(
            "SELECT variant_id, day, assigned, converted FROM experiment_daily WHERE test_id = $1", test_id
        )
    }
    assert daily == {(control, D): (2, 2), (treatment, D): (2, 0), (treatment, nxt): (0, 1)}

    # Idempotent: nothing changed, nothing is redone, and a forced re-run changes no row.
    assert [r for r in await run_conversions(db, today=D + dt.timedelta(days=2)) if r.status == "ok"] == []
    from aggregation.jobs import aggregate_range

    await aggregate_range(db, D, nxt, jobs=("conversions",))
    again = {
        r["assignment_id"]: (r["converted"], r["converted_at"])
        for r in await conn.fetch("SELECT assignment_id, converted, converted_at FROM ab_test_assignments")
    }
    assert again == rows

    # A late goal event for u3 (an offline queue) converts it on the next run.
    await insert_events(conn, [Event(at(D, 20), event_name="purchase", user_id=u3)])
    assert await _convert(conn) == 1
    redone = [r for r in await run_conversions(db, today=D + dt.timedelta(days=2)) if r.status == "ok"]
    assert [r.period.date() for r in redone] == [D]
    assert await conn.fetchval(
        "SELECT converted_at FROM ab_test_assignments WHERE assignment_id = $1", a3
    ) == at(D, 20)


async def test_two_schedulers_run_each_job_once(
    clean_db: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    users = await create_users(conn, 2)
    now = utcnow()
    # Today's event must fall today: between 00:00 and 01:00 UTC "an hour ago" is yesterday, which the
    # daily job rolls up too (the test failed in that hour).
    this_morning = dt.datetime.combine(now.date(), dt.time(), tzinfo=now.tzinfo)
    await insert_events(
        conn,
        [
            Event(now - dt.timedelta(days=3), user_id=users[0]),
            Event(now - dt.timedelta(days=1), user_id=users[1]),
            Event(max(now - dt.timedelta(hours=1), this_morning), user_id=users[1]),
        ],
    )
    dbs = [Database(clean_db, max_size=3), Database(clean_db, max_size=3)]
    finished: list[JobExecutionEvent] = []
    done = asyncio.Event()
    schedulers = []
    try:
        for db in dbs:
            await db.open()
            scheduler = create_scheduler()
            app: Any = SimpleNamespace(
                state=SimpleNamespace(db=db, settings=make_settings(clean_db, tmp_path))
            )
            register_jobs(scheduler, app)

            def listener(event: JobExecutionEvent) -> None:
                finished.append(event)
                if len(finished) == 2 * len(JOB_IDS):
                    done.set()

            scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
            scheduler.start()
            schedulers.append(scheduler)
        # Both "processes" fire every aggregation job at the same moment.
        fire_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
        for scheduler in schedulers:
            for job_id in JOB_IDS:
                scheduler.modify_job(job_id, next_run_time=fire_at)
        await asyncio.wait_for(done.wait(), 120)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)
        for db in dbs:
            await db.close()

    assert [e for e in finished if e.exception is not None] == []
    today = dt.datetime.combine(now.date(), dt.time())
    ledger = await conn.fetch("SELECT job, period, attempts, status FROM aggregation_runs")
    assert ledger, "the jobs recorded nothing"
    assert {r["status"] for r in ledger} == {"ok"}
    # Each period of each job was done by exactly one of the two schedulers. (The daily job also stamps
    # the hourly rows of the days it recomputes, so only today's hours belong to the hourly job alone.)
    counted = [r for r in ledger if r["job"] != "hourly" or r["period"] >= today]
    assert {(r["job"], r["period"]): r["attempts"] for r in counted} == {
        (r["job"], r["period"]): 1 for r in counted
    }
    daily = {r["period"].date() for r in ledger if r["job"] == "daily"}
    assert (now - dt.timedelta(days=1)).date() in daily
    assert (now - dt.timedelta(days=3)).date() in daily
    # And the rollups hold each event once.
    assert await conn.fetchval("SELECT sum(events) FROM event_rollups_daily") == 2
