"""Rollups equal a SQL ground truth computed from the same raw events, and behave under re-runs and late data."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation import finalise_day, finalised_days, rollup_day
from aggregation.jobs import aggregate_range, run_daily, run_hourly
from kernel.db import Database
from tests.integration.aggregation.conftest import Event, create_users, insert_events

DAY0 = dt.date(2026, 3, 10)
PERSON = "coalesce(user_id::text, external_user_id, anonymous_id)"


async def truth_hourly(conn: asyncpg.Connection, lo: dt.date, hi: dt.date) -> set[tuple[Any, ...]]:
    rows = await conn.fetch(
        f"""SELECT date_trunc('hour', "timestamp"), event_name, event_category, count(*),
                   count(DISTINCT {PERSON}), count(DISTINCT device_id), count(DISTINCT session_id)
            FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1, 2, 3""",
        dt.datetime.combine(lo, dt.time()),
        dt.datetime.combine(hi, dt.time()),
    )
    return {tuple(r) for r in rows}


async def truth_daily(conn: asyncpg.Connection, lo: dt.date, hi: dt.date) -> set[tuple[Any, ...]]:
    rows = await conn.fetch(
        f"""SELECT "timestamp"::date, event_name, event_category, count(*),
                   count(DISTINCT {PERSON}), count(DISTINCT device_id), count(DISTINCT session_id)
            FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1, 2, 3""",
        dt.datetime.combine(lo, dt.time()),
        dt.datetime.combine(hi, dt.time()),
    )
    return {tuple(r) for r in rows}


async def truth_active(conn: asyncpg.Connection, day: dt.date) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        f"""SELECT count(DISTINCT {PERSON}) FILTER (WHERE "timestamp" >= $1),
                   count(DISTINCT {PERSON}) FILTER (WHERE "timestamp" >= $2),
                   count(DISTINCT {PERSON})
            FROM analytics_events WHERE "timestamp" >= $3 AND "timestamp" < $4""",
        dt.datetime.combine(day, dt.time()),
        dt.datetime.combine(day - dt.timedelta(days=6), dt.time()),
        dt.datetime.combine(day - dt.timedelta(days=29), dt.time()),
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time()),
    )
    return row[0], row[1], row[2]


async def stored_hourly(conn: asyncpg.Connection) -> set[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT period, event_name, event_category, events, users, devices, sessions FROM event_rollups_hourly"
    )
    return {tuple(r) for r in rows}


async def stored_daily(conn: asyncpg.Connection) -> set[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT day, event_name, event_category, events, users, devices, sessions FROM event_rollups_daily"
    )
    return {tuple(r) for r in rows}


async def stored_active(conn: asyncpg.Connection) -> dict[dt.date, tuple[int, int, int]]:
    rows = await conn.fetch("SELECT day, dau, wau, mau FROM active_users_daily")
    return {r["day"]: (r["dau"], r["wau"], r["mau"]) for r in rows}


def _event(users: list[uuid.UUID]) -> st.SearchStrategy[Event]:
    # Small alphabets so that groups collide and distinct counts are non-trivial; NULLs everywhere allowed.
    person = st.one_of(
        st.none(),
        st.sampled_from(users).map(lambda u: {"user_id": u}),
        st.sampled_from(users).map(lambda u: {"external_user_id": str(u)}),  # same person as user_id
        st.sampled_from(["ext-a", "ext-b"]).map(lambda x: {"external_user_id": x}),
        st.sampled_from(["anon-1", "anon-2", "anon-3"]).map(lambda x: {"anonymous_id": x}),
    )
    return st.builds(
        lambda minute, name, cat, who, device, session: Event(
            timestamp=dt.datetime.combine(DAY0, dt.time())
            + dt.timedelta(minutes=minute, microseconds=minute),
            event_name=name,
            event_category=cat,
            device_id=device,
            session_id=session,
            **(who or {}),
        ),
        minute=st.integers(0, 9 * 24 * 60 - 1),
        name=st.sampled_from(["open", "purchase", "view"]),
        cat=st.sampled_from(["app", "commerce"]),
        who=person,
        device=st.one_of(st.none(), st.sampled_from(["d1", "d2", "d3"])),
        session=st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3", "s4"])),
    )


@pytest.fixture
async def users(conn: asyncpg.Connection) -> list[uuid.UUID]:
    return await create_users(conn, 3)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_rollups_equal_sql_ground_truth(
    data: st.DataObject, db: Database, conn: asyncpg.Connection, clean_db: str
) -> None:
    # Users survive between examples; everything else is emptied.
    await conn.execute(
        "TRUNCATE analytics_events, event_rollups_hourly, event_rollups_daily, active_users_daily, "
        "active_user_sets, aggregation_runs, rollup_finalisations CASCADE"
    )
    users = [r["user_id"] for r in await conn.fetch("SELECT user_id FROM users")]
    if not users:
        users = await create_users(conn, 3)
    events = data.draw(st.lists(_event(users), max_size=60))
    await insert_events(conn, events)

    last = DAY0 + dt.timedelta(days=8)
    results = await aggregate_range(db, DAY0, last, jobs=("daily",))
    assert {r.status for r in results} == {"ok"}

    assert await stored_hourly(conn) == await truth_hourly(conn, DAY0, last + dt.timedelta(days=1))
    assert await stored_daily(conn) == await truth_daily(conn, DAY0, last + dt.timedelta(days=1))
    active = await stored_active(conn)
    for i in range(9):
        day = DAY0 + dt.timedelta(days=i)
        assert active[day] == await truth_active(conn, day), day


async def test_rerun_is_idempotent(db: Database, conn: asyncpg.Connection, users: list[uuid.UUID]) -> None:
    t0 = dt.datetime.combine(DAY0, dt.time(9))
    events = [
        Event(
            t0 + dt.timedelta(minutes=7 * i), user_id=users[i % 3], device_id=f"d{i % 2}", session_id=f"s{i}"
        )
        for i in range(40)
    ]
    await insert_events(conn, events)
    await rollup_day(db, DAY0)
    first = (await stored_hourly(conn), await stored_daily(conn), await stored_active(conn))
    await rollup_day(db, DAY0)
    await aggregate_range(db, DAY0, DAY0, jobs=("daily", "hourly"))
    assert (await stored_hourly(conn), await stored_daily(conn), await stored_active(conn)) == first
    assert sum(r[3] for r in first[1]) == 40
    assert first[2][DAY0] == (3, 3, 3)


async def test_late_event_updates_its_day(
    db: Database, conn: asyncpg.Connection, users: list[uuid.UUID]
) -> None:
    today = DAY0 + dt.timedelta(days=3)
    early = dt.datetime.combine(DAY0, dt.time(8))
    await insert_events(
        conn, [Event(early, user_id=users[0]), Event(early, event_name="buy", user_id=users[1])]
    )
    first = await run_daily(db, today=today)
    assert any(r.period.date() == DAY0 and r.status == "ok" for r in first)
    # Nothing changed: a second run recomputes nothing.
    assert [r for r in await run_daily(db, today=today) if r.status == "ok"] == []

    # An offline queue flushes an event for DAY0 two days later.
    await insert_events(conn, [Event(early + dt.timedelta(hours=3), anonymous_id="late-anon")])
    again = await run_daily(db, today=today)
    redone = {r.period.date() for r in again if r.status == "ok" and r.job == "daily"}
    assert redone == {DAY0}
    # WAU/MAU of the following days were refreshed from the new people set.
    assert {r.period.date() for r in again if r.job == "active_users" and r.status == "ok"} == {
        DAY0 + dt.timedelta(days=1),
        DAY0 + dt.timedelta(days=2),
    }
    assert await stored_daily(conn) == await truth_daily(conn, DAY0, today)
    active = await stored_active(conn)
    assert active[DAY0] == (3, 3, 3)
    assert active[DAY0 + dt.timedelta(days=2)] == (0, 3, 3)


async def test_hourly_job_rolls_last_hour_and_late_hours(
    db: Database, conn: asyncpg.Connection, users: list[uuid.UUID]
) -> None:
    now = dt.datetime.combine(DAY0, dt.time(12, 5))
    await insert_events(conn, [Event(dt.datetime.combine(DAY0, dt.time(11, 30)), user_id=users[0])])
    results = await run_hourly(db, now=now)
    assert [(r.period.hour, r.status) for r in results] == [(11, "ok")]
    assert await run_hourly(db, now=now) == []
    await insert_events(conn, [Event(dt.datetime.combine(DAY0, dt.time(3, 1)), user_id=users[1])])
    results = await run_hourly(db, now=now)
    assert [(r.period.hour, r.status) for r in results] == [(3, "ok")]
    assert await stored_hourly(conn) == await truth_hourly(conn, DAY0, DAY0 + dt.timedelta(days=1))


async def test_failed_period_is_recorded_and_retried(
    db: Database, conn: asyncpg.Connection, users: list[uuid.UUID]
) -> None:
    today = DAY0 + dt.timedelta(days=2)
    await insert_events(conn, [Event(dt.datetime.combine(DAY0, dt.time(5)), user_id=users[0])])
    await insert_events(
        conn, [Event(dt.datetime.combine(DAY0 + dt.timedelta(days=1), dt.time(5)), user_id=users[1])]
    )
    # A trigger makes the write of DAY0's daily rows fail, as a broken disk or a bug would.
    await conn.execute(
        """CREATE FUNCTION agg_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.day = DATE '2026-03-10' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$;
           CREATE TRIGGER agg_test_fail BEFORE INSERT ON event_rollups_daily
           FOR EACH ROW EXECUTE FUNCTION agg_test_fail();"""
    )
    try:
        results = {(r.job, r.period.date()): r for r in await run_daily(db, today=today)}
        assert results[("daily", DAY0)].status == "failed"
        # The failure does not block the other day.
        assert results[("daily", DAY0 + dt.timedelta(days=1))].status == "ok"
        row = await conn.fetchrow(
            "SELECT status, error, attempts FROM aggregation_runs WHERE job = 'daily' AND period = $1",
            dt.datetime.combine(DAY0, dt.time()),
        )
        assert row["status"] == "failed"
        assert "disk on fire" in row["error"]
    finally:
        await conn.execute("DROP TRIGGER agg_test_fail ON event_rollups_daily; DROP FUNCTION agg_test_fail()")
    retried = [r for r in await run_daily(db, today=today) if r.job == "daily" and r.status == "ok"]
    assert [r.period.date() for r in retried] == [DAY0]
    assert await stored_daily(conn) == await truth_daily(conn, DAY0, today)


async def test_retention_contract(db: Database, conn: asyncpg.Connection, users: list[uuid.UUID]) -> None:
    t = dt.datetime.combine(DAY0, dt.time(10))
    await insert_events(conn, [Event(t, user_id=users[0]), Event(t, user_id=users[1])])
    # Not rolled up yet: the counts disagree and nothing is marked.
    async with db.transaction() as c:
        assert await finalise_day(c, DAY0) == (2, 0, False)
        assert await finalised_days(c, DAY0, DAY0) == set()
    await rollup_day(db, DAY0)
    async with db.transaction() as c:
        assert await finalise_day(c, DAY0) == (2, 2, True)
        assert await finalise_day(c, DAY0) == (2, 2, True)  # idempotent
    async with db.transaction() as c:
        assert await finalised_days(c, DAY0 - dt.timedelta(days=1), DAY0 + dt.timedelta(days=1)) == {DAY0}
    assert await conn.fetchval("SELECT count(*) FROM rollup_finalisations") == 1

    # A finalised day is frozen: late data and forced re-runs leave its rollups alone.
    await insert_events(conn, [Event(t, user_id=users[2])])
    await rollup_day(db, DAY0)
    results = await aggregate_range(db, DAY0, DAY0, jobs=("daily",))
    assert [r.status for r in results] == ["finalised"]
    late = await run_daily(db, today=DAY0 + dt.timedelta(days=1))
    assert {r.status for r in late if r.period.date() == DAY0} == {"finalised"}
    assert await conn.fetchval("SELECT sum(events) FROM event_rollups_daily WHERE day = $1", DAY0) == 2

    # A day with raw events the rollup does not match is refused.
    other = DAY0 + dt.timedelta(days=1)
    await insert_events(conn, [Event(dt.datetime.combine(other, dt.time(1)), user_id=users[0])])
    await rollup_day(db, other)
    await insert_events(conn, [Event(dt.datetime.combine(other, dt.time(2)), user_id=users[0])])
    async with db.transaction() as c:
        assert await finalise_day(c, other) == (2, 1, False)
