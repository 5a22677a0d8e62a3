"""The exactly-once ledger partitioned by arrival week: retries across weeks and across the week's start
(midnight of a Monday), partition upkeep."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from ingest import ledger
from ingest.pipeline import Pipeline, _ClaimConflict
from tests.integration.ingest.conftest import KeyedSource, count, track
from tests.integration.ingest.test_pipeline import make_batch

_PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'ingest_message_ids'::regclass"
)


async def _today(conn: asyncpg.Connection) -> dt.date:
    day: dt.date = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    return day


async def _this_week(conn: asyncpg.Connection) -> dt.datetime:
    """Midnight of this week's Monday, by the database's clock."""
    return dt.datetime.combine(ledger.week_of(await _today(conn)), dt.time())


@pytest.mark.parametrize(("weeks_ago", "duplicate"), [(1, True), (2, False)])
async def test_a_retry_in_a_later_week_is_found_in_the_earlier_weeks_partition(
    pipeline: Pipeline, source: KeyedSource, conn: asyncpg.Connection, weeks_ago: int, duplicate: bool
) -> None:
    msgs = [track(f"later-{i}") for i in range(30)]
    assert (await pipeline.submit(make_batch(source, msgs, "2026-11-20T10:00:01Z"))).accepted == 30
    # As if those claims had been made ``weeks_ago`` weeks ago: the rows move to that week's partition.
    await conn.execute("UPDATE ingest_message_ids SET week = week - 7 * $1::int", weeks_ago)
    assert await count(conn, "ingest_message_ids", "week = $1", (await _this_week(conn)).date()) == 0

    retry = await pipeline.submit(make_batch(source, msgs, "2026-11-20T10:05:01Z"))
    if duplicate:  # the previous week is inside the 7-day window: found there, not stored again
        assert (retry.accepted, retry.duplicates) == (0, 30)
        assert await count(conn, "analytics_events") == 30
    else:  # two weeks back is past it (the documented horizon): stored again
        assert (retry.accepted, retry.duplicates) == (30, 0)
        assert await count(conn, "analytics_events") == 60


class _Clock:
    """The start ``ledger.begin`` works from, per connection (the database's clock cannot be set): the
    real statement runs with it, so the look-up and the server-side bounds are a real flush's."""

    def __init__(self) -> None:
        self.at: dict[int, dt.datetime] = {}

    def patch(self, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def begin(conn: asyncpg.Connection, ids: Any, window: int, timeout: float, **kw: Any) -> Any:
            return await real(conn, ids, window, timeout, at=self.at[id(conn)], **kw)

        return begin


@pytest.mark.parametrize("first_commits", [True, False])
async def test_claims_on_both_sides_of_the_weeks_start_meet(
    pipeline: Pipeline,
    source: KeyedSource,
    conn: asyncpg.Connection,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    first_commits: bool,
) -> None:
    """A flush that began on Sunday at 23:59:59 still holds its claims (uncommitted) when the retry's
    flush begins on Monday at 00:00:01: the retry waits for it. If it committed, the retry's COPY claim
    fails (ending its transaction) and the careful claim in a new one finds them all duplicates; if it
    rolled back, the retry's COPY claim stores them."""
    clock = _Clock()
    monkeypatch.setattr(ledger, "begin", clock.patch(ledger.begin))
    monday = await _this_week(conn)
    ids = make_batch(source, [track(f"mid-{i}") for i in range(40)]).keys
    before, after = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        clock.at[id(before)] = monday - dt.timedelta(seconds=1)
        clock.at[id(after)] = monday + dt.timedelta(seconds=1)
        t1, t2 = before.transaction(), after.transaction()
        await t1.start()
        await t2.start()
        assert await pipeline._claim(before, ids, [], 10) == (set(ids), set())
        retry = asyncio.create_task(pipeline._claim(after, ids, [], 10))
        await asyncio.sleep(0.5)
        assert not retry.done()  # waiting on the other week's uncommitted claims
        await (t1.commit() if first_commits else t1.rollback())
        if first_commits:
            with pytest.raises(_ClaimConflict):
                await asyncio.wait_for(retry, 10)
            await t2.rollback()
            async with after.transaction():
                assert await pipeline._claim(after, ids, [], 10, careful=True) == (set(), set())
        else:
            assert await asyncio.wait_for(retry, 10) == (set(ids), set())
            await t2.commit()
    finally:
        await before.close()
        await after.close()
    weeks = {r[0] for r in await conn.fetch("SELECT DISTINCT week FROM ingest_message_ids")}
    assert weeks == {monday.date() - dt.timedelta(days=7), monday.date()}


async def test_a_flush_an_hour_into_the_week_reads_the_previous_week_only(
    pipeline: Pipeline, source: KeyedSource, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(ledger, "begin", clock.patch(ledger.begin))
    monday = await _this_week(conn)
    last = monday.date() - dt.timedelta(days=7)
    assert ledger.claim_weeks(monday + ledger.GRACE - dt.timedelta(microseconds=1)) == (monday.date(), last)
    assert ledger.claim_weeks(monday + ledger.GRACE) == (monday.date(),)
    ids = make_batch(source, [track(f"late-{i}") for i in range(10)]).keys
    async with pipeline._db.pool.acquire() as a, a.transaction():
        clock.at[id(a)] = monday - dt.timedelta(seconds=1)
        assert await pipeline._claim(a, ids, [], 10) == (set(ids), set())
    async with pipeline._db.pool.acquire() as b, b.transaction():
        clock.at[id(b)] = monday + ledger.GRACE
        assert await pipeline._claim(b, ids, [], 10) == (set(), set())
    assert await count(conn, "ingest_message_ids", "week = $1", monday.date()) == 0


async def test_upkeep_makes_weeks_ahead_moves_the_default_and_drops_past_the_window(
    conn: asyncpg.Connection,
) -> None:
    week = (await _this_week(conn)).date()
    far, old = week + dt.timedelta(weeks=5), week - dt.timedelta(weeks=6)
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ledger.partition_name(old)} PARTITION OF ingest_message_ids "
        f"FOR VALUES FROM ('{old}') TO ('{old + dt.timedelta(weeks=1)}')"
    )
    await conn.execute(
        "INSERT INTO ingest_message_ids (message_key, week) VALUES (gen_random_uuid(), $1), "
        "(gen_random_uuid(), $1), (gen_random_uuid(), $2), (gen_random_uuid(), $3)",
        far,
        week - dt.timedelta(weeks=9),
        old,
    )
    assert await count(conn, "ingest_message_ids_default") == 3  # 5 weeks ahead, and 9 weeks back
    async with conn.transaction():
        done = await ledger.keep_partitions(conn, window_days=7, ahead_weeks=5, lock_timeout_ms=2000)
    assert ledger.partition_name(far) in done.created
    assert done.dropped == [ledger.partition_name(old)]
    assert (done.moved, done.expired) == (2, 1)
    assert await count(conn, ledger.partition_name(far)) == 2
    assert await count(conn, "ingest_message_ids_default") == 0
    names = {r[0] for r in await conn.fetch(_PARTITIONS)}
    assert {ledger.partition_name(week + dt.timedelta(weeks=n)) for n in range(-1, 6)} <= names
    assert ledger.partition_name(week - dt.timedelta(weeks=3)) not in names
    async with conn.transaction():  # idempotent
        again = await ledger.keep_partitions(conn, window_days=7, ahead_weeks=5, lock_timeout_ms=2000)
    assert (again.created, again.dropped, again.moved, again.expired) == ([], [], 0, 0)
