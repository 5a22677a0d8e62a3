"""The one conversion rule (docs/conversions.md), applied by the incremental goal-event job."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import asyncpg

from experiments.jobs import convert_goal_events
from experiments.service.conversions import INGEST_OVERLAP
from tests.integration.experiments.conftest import make_user

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _start(now: dt.datetime) -> dt.datetime:
    """Six hours before ``now``, or seven if the hour after that would cross midnight: the end-date test
    puts events up to 40 minutes after T0 and expects them on T0's date (a clean-clone CI run at about
    05:59 UTC failed when T0 + 20 min fell on the next day)."""
    t0 = now - dt.timedelta(hours=6)
    return t0 if (t0 + dt.timedelta(hours=1)).date() == t0.date() else t0 - dt.timedelta(hours=1)


T0 = _start(NOW)


async def _test(
    conn: asyncpg.Connection,
    goal: str | None = "purchase",
    status: str = "active",
    end: dt.date | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    test_id = await conn.fetchval(
        """INSERT INTO ab_tests (name, start_date, end_date, status, goal_event)
           VALUES ($1, $2, $3, $4, $5) RETURNING test_id""",
        f"t-{uuid.uuid4().hex[:8]}",
        (T0 - dt.timedelta(days=30)).date(),
        end,
        status,
        goal,
    )
    variant_id = await conn.fetchval(
        """INSERT INTO ab_test_variants (test_id, name, traffic_percentage, position, is_control)
           VALUES ($1, 'control', 100, 0, true) RETURNING variant_id""",
        test_id,
    )
    return test_id, variant_id


async def _assign(conn: asyncpg.Connection, test: tuple[uuid.UUID, uuid.UUID], at: dt.datetime) -> uuid.UUID:
    user_id = await make_user(conn)
    await conn.execute(
        """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, assigned_at)
           VALUES ($1, $2, $3, $4)""",
        *test,
        user_id,
        at,
    )
    return user_id


async def _event(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    at: dt.datetime,
    name: str = "purchase",
    ingested: dt.datetime | None = None,
) -> None:
    """An event as ingest stores it: ``created_at`` is its ingestion time (now unless told)."""
    await conn.execute(
        """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", created_at)
           VALUES ($1, $2, $3, 'test', $4, coalesce($5, LOCALTIMESTAMP))""",
        uuid.uuid4(),
        user_id,
        name,
        at,
        ingested,
    )


async def _run(conn: asyncpg.Connection) -> int:
    async with conn.transaction():
        return await convert_goal_events(conn)


async def _converted(conn: asyncpg.Connection, user_id: uuid.UUID) -> dt.datetime | None:
    row = await conn.fetchrow(
        "SELECT converted, converted_at FROM ab_test_assignments WHERE user_id = $1", user_id
    )
    assert row["converted"] == (row["converted_at"] is not None)
    at: dt.datetime | None = row["converted_at"]
    return at


async def test_first_goal_event_at_or_after_assignment(conn: asyncpg.Connection) -> None:
    test = await _test(conn)
    u_exact, u_later, u_before, u_other = [await _assign(conn, test, T0) for _ in range(4)]
    await _event(conn, u_exact, T0)  # at the assignment's instant: counts (>=)
    await _event(conn, u_later, T0 + dt.timedelta(minutes=3))
    await _event(conn, u_later, T0 + dt.timedelta(minutes=1))  # the first one wins, whatever the order
    await _event(conn, u_before, T0 - dt.timedelta(seconds=1))
    await _event(conn, u_other, T0 + dt.timedelta(minutes=1), name="view")
    assert await _run(conn) == 2
    assert await _converted(conn, u_exact) == T0
    assert await _converted(conn, u_later) == T0 + dt.timedelta(minutes=1)
    assert await _converted(conn, u_before) is None
    assert await _converted(conn, u_other) is None
    assert await _run(conn) == 0  # idempotent


async def test_incremental_late_events_and_earlier_times(conn: asyncpg.Connection) -> None:
    test = await _test(conn)
    u1 = await _assign(conn, test, T0)
    u2 = await _assign(conn, test, T0)
    await _event(conn, u1, T0 + dt.timedelta(hours=2))
    assert await _run(conn) == 1
    through = await conn.fetchval("SELECT ingested_through FROM experiment_conversion_watermarks")
    assert through is not None

    # Late data: ingested now, timestamped hours ago. u2 converts at the event's own time, and u1's
    # conversion moves earlier: converted_at is the earliest qualifying event, whatever the arrival order.
    await _event(conn, u2, T0 + dt.timedelta(hours=1))
    await _event(conn, u1, T0 + dt.timedelta(hours=1))
    assert await _run(conn) == 2
    assert await _converted(conn, u2) == T0 + dt.timedelta(hours=1)
    assert await _converted(conn, u1) == T0 + dt.timedelta(hours=1)

    # A run reads only what was ingested since its watermark (less the overlap): an event that claims
    # to have been ingested long before is not read again, which shows the table is not rescanned.
    u3 = await _assign(conn, test, T0)
    await _event(
        conn, u3, T0 + dt.timedelta(hours=1), ingested=through - INGEST_OVERLAP - dt.timedelta(hours=1)
    )
    assert await _run(conn) == 0
    # ...while one ingested within the overlap before the watermark (an ingest transaction that began
    # before the last run and committed after it) still is.
    await _event(conn, u3, T0 + dt.timedelta(hours=3), ingested=through - INGEST_OVERLAP / 2)
    assert await _run(conn) == 1
    assert await _converted(conn, u3) == T0 + dt.timedelta(hours=3)


async def test_statuses_end_date_and_api_conversions(conn: asyncpg.Connection) -> None:
    paused = await _test(conn, status="paused")
    completed = await _test(conn, status="completed")
    ended = await _test(conn, end=T0.date())
    no_goal = await _test(conn, goal=None)
    u_paused = await _assign(conn, paused, T0)
    u_completed = await _assign(conn, completed, T0)
    u_ended = await _assign(conn, ended, T0)
    u_no_goal = await _assign(conn, no_goal, T0)
    after_end = dt.datetime.combine(T0.date() + dt.timedelta(days=1), dt.time())
    for u in (u_paused, u_completed, u_no_goal):
        await _event(conn, u, T0 + dt.timedelta(minutes=1))
    await _event(conn, u_ended, after_end)  # the day after the end date: too late
    assert await _run(conn) == 1
    assert await _converted(conn, u_paused) == T0 + dt.timedelta(minutes=1)
    for u in (u_completed, u_ended, u_no_goal):
        assert await _converted(conn, u) is None

    # An explicit (API) conversion keeps its time unless a goal event shows an earlier one.
    await conn.execute(
        "UPDATE ab_test_assignments SET converted = true, converted_at = $2 WHERE user_id = $1",
        u_ended,
        T0 + dt.timedelta(minutes=30),
    )
    await _event(conn, u_ended, T0 + dt.timedelta(minutes=40))
    assert await _run(conn) == 0
    await _event(conn, u_ended, T0 + dt.timedelta(minutes=20))
    assert await _run(conn) == 1
    assert await _converted(conn, u_ended) == T0 + dt.timedelta(minutes=20)


async def test_a_new_goal_reads_the_past_once(conn: asyncpg.Connection) -> None:
    test = await _test(conn, goal="signup")
    user = await _assign(conn, test, T0)
    await _event(conn, user, T0 + dt.timedelta(minutes=5), name="purchase")
    assert await _run(conn) == 0
    # The watermark was for "signup": with a new goal the test is read from the start, once.
    await conn.execute("UPDATE ab_tests SET goal_event = 'purchase' WHERE test_id = $1", test[0])
    assert await _run(conn) == 1
    assert await _converted(conn, user) == T0 + dt.timedelta(minutes=5)
    assert await conn.fetchval("SELECT goal_event FROM experiment_conversion_watermarks") == "purchase"


async def test_the_scan_uses_the_ingestion_index(conn: asyncpg.Connection) -> None:
    """The events read are found through an index on event_name, never by scanning time ranges."""
    from experiments.conversion_repository import _CONVERT_GOALS

    test = await _test(conn)
    await _assign(conn, test, T0)
    # Other events in the same hours, so that the statistics say what production's do: a time range
    # matches many rows, one event name few.
    someone = await conn.fetchval(
        """INSERT INTO users (email, password_hash, first_name, last_name)
           VALUES ('someone@example.com', 'x', 'A', 'B') RETURNING user_id"""
    )
    await conn.execute(
        """INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp")
           SELECT gen_random_uuid(), $2, 'page_view_' || (i % 20), 'test', $1::timestamp + i * interval '1 second'
           FROM generate_series(1, 5000) AS i""",
        T0,
        someone,
    )
    await conn.execute("ANALYZE analytics_events")
    async with conn.transaction():
        # Small tables: make the planner show whether an index *can* serve the scan.
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN " + _CONVERT_GOALS, [test[0]], ["purchase"], [NOW - INGEST_OVERLAP], [T0], [None]
            )
        )
    # Each partition's copy of an index is named after it (analytics_events_p2026_11_event_name_..._idx).
    # On tables this small the planner may take either index that leads with event_name (the composite
    # one or the plain one; which one is a cost tie); what must never happen is a scan by timestamp,
    # whose cost grows with the whole history (bench conversions measures that).
    indexes = re.findall(
        r"(?:Index Scan using|Index Only Scan using|Bitmap Index Scan on) (analytics_events_\w+)", plan
    )
    assert indexes, plan
    assert "Seq Scan on analytics_events" not in plan, plan
    # The default partition is left out: upkeep keeps it empty (ingest rejects times outside the
    # partitions), and on an empty table the planner may probe any index, e.g. user_id for the
    # "user_id IS NOT NULL" of user units (seen once in CI).
    monthly = [name for name in indexes if not name.startswith("analytics_events_default")]
    assert monthly, plan
    assert all("_event_name_" in name for name in monthly), plan
