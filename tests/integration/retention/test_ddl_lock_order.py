"""Partition DDL never deadlocks with the event tables' writers, whatever their lock order.

The writers lock ``users`` before the event tables: a flush locks the users it references (``FOR KEY
SHARE``, the ledger's first statement) and then writes the events; an account erasure reads its user
(authentication), nulls the user's events and then deletes the users row. Dropping a detached events
partition drops its foreign key to ``users``, which needs ACCESS EXCLUSIVE on ``users``; asked for in the
transaction that had detached it (and so held the parent), it deadlocked with a flush. Each test holds a
writer half-way, starts the DDL, lets the writer go on, and checks that nothing was aborted as a
deadlock (PostgreSQL looks for one after deadlock_timeout, 1 s; the tests wait 1.5 s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from kernel.db import Database
from retention import jobs, service
from retention import repository as repo
from retention.errors import NotDetachedByRetention
from retention.schemas import RetentionPolicy, add_months
from tests.integration.retention.conftest import insert_events, partition_names


async def _start_waiting(db: Database, ddl: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
    """Run ``ddl`` as a task; return once one of the database's backends waits for a lock."""
    task = asyncio.create_task(ddl())
    for _ in range(1000):
        waiting = await db.pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        )
        if waiting or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), "the DDL should be waiting for the writer"
    return task


@asynccontextmanager
async def _writer(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection in an open transaction, committed at the end of the block."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            yield conn
    finally:
        await conn.close()


async def _add_user(db: Database) -> uuid.UUID:
    user_id = uuid.uuid4()
    await db.pool.execute(
        "INSERT INTO users (user_id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'A', 'B')",
        user_id,
        f"{user_id}@example.com",
    )
    return user_id


async def _doomed_events_partition(rdb: Database) -> repo.Partition:
    """A month 30 months back with one event, its properties partition already dropped."""
    doomed = add_months(dt.datetime.now(dt.UTC).date(), -30)
    await insert_events(rdb, [dt.datetime.combine(doomed.replace(day=3), dt.time(12))], props=0)
    await jobs.run(rdb, doomed, RetentionPolicy(), upkeep_only=True)
    async with rdb.transaction() as conn:
        parts = {p.name: p for p in await repo.list_partitions(conn, "analytics_events")}
        props = {p.name: p for p in await repo.list_partitions(conn, "event_properties")}
    properties = props[f"event_properties_p{doomed:%Y_%m}"]
    await jobs.detach_and_drop(rdb, RetentionPolicy(), properties)
    return parts[f"analytics_events_p{doomed:%Y_%m}"]


# Writers held half-way: (statements before the DDL starts, statement after, a check of its effect).
# A flush locks the users its events reference (its first statement), then writes the events.
_FLUSH = (
    ["SELECT user_id FROM users WHERE user_id = $1 FOR KEY SHARE"],
    """INSERT INTO analytics_events (event_id, event_name, event_category, device_id, "timestamp", user_id)
       VALUES (gen_random_uuid(), 'tap', 'track', 'dev-1', now() AT TIME ZONE 'UTC', $1)""",
    ("SELECT count(*) FROM analytics_events WHERE user_id = $1", 1),
)
# An account erasure authenticates (reads the user), unlinks the user's events, then deletes the user.
_ERASURE = (
    [
        "SELECT user_id FROM users WHERE user_id = $1",
        "UPDATE analytics_events SET user_id = NULL WHERE user_id = $1",
    ],
    "DELETE FROM users WHERE user_id = $1",
    ("SELECT count(*) FROM users WHERE user_id = $1", 0),
)


@pytest.mark.parametrize(
    ("writer", "detached"),
    [(_FLUSH, False), (_ERASURE, False), (_ERASURE, True)],
    ids=["flush", "erasure", "erasure-after-detach"],
)
async def test_a_drop_waits_for_a_writer(
    rdb: Database,
    rdb_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    writer: Any,
    detached: bool,
) -> None:
    before, after, (check, expected) = writer
    caplog.set_level(logging.INFO, logger="retention")
    # Waits for users longer than deadlock_timeout (1 s), so that a wrong lock order shows as a deadlock
    # here rather than being cut short by the 200 ms users timeout and retried.
    monkeypatch.setattr(repo, "_USERS_LOCK_TIMEOUT_MS", 5_000)
    doomed = await _doomed_events_partition(rdb)
    user_id = await _add_user(rdb)
    policy = RetentionPolicy(lock_timeout_ms=10_000)
    if detached:  # the drop's second transaction alone: the erasure's ON DELETE SET NULL reaches the table
        async with rdb.transaction() as conn:
            await repo.detach(conn, doomed, lock_timeout_ms=2_000)
    ddl = (
        functools.partial(jobs.drop_detached, rdb, policy, doomed.parent, doomed.name)
        if detached
        else functools.partial(jobs.detach_and_drop, rdb, policy, doomed)
    )
    async with _writer(rdb_url) as conn:
        for sql in before:
            await conn.execute(sql, user_id)
        dropping = await _start_waiting(rdb, ddl)
        await conn.execute(after, user_id)
        await asyncio.sleep(1.5)
        assert not dropping.done()
    await asyncio.wait_for(dropping, timeout=10)

    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
    assert doomed.name not in await partition_names(rdb, "analytics_events")
    assert await rdb.pool.fetchval(check, user_id) == expected


async def test_upkeep_waits_for_an_account_erasure(rdb: Database, rdb_url: str) -> None:
    month = add_months(dt.datetime.now(dt.UTC).date(), -16)
    assert f"analytics_events_p{month:%Y_%m}" not in await partition_names(rdb, "analytics_events")
    user_id = await _add_user(rdb)

    async def make() -> tuple[bool, int]:
        async with rdb.transaction() as conn:
            return await repo.ensure_month(conn, month, lock_timeout_ms=10_000)

    before, after, _ = _ERASURE
    async with _writer(rdb_url) as erasure:
        for sql in before:
            await erasure.execute(sql, user_id)
        making = await _start_waiting(rdb, make)
        await erasure.execute(after, user_id)
        await asyncio.sleep(1.5)
        assert not making.done()
    created, _ = await asyncio.wait_for(making, timeout=10)

    assert created
    assert f"analytics_events_p{month:%Y_%m}" in await partition_names(rdb, "analytics_events")


async def test_a_run_drops_a_table_left_detached(rdb: Database) -> None:
    doomed = await _doomed_events_partition(rdb)
    # What a run that stopped between the two transactions leaves: the partition detached, not dropped.
    async with rdb.transaction() as conn:
        await repo.detach(conn, doomed, lock_timeout_ms=2_000)
    today = dt.datetime.now(dt.UTC).date()
    # A table of the same name pattern that retention did not detach is never touched.
    async with rdb.transaction() as conn:
        await conn.execute("CREATE TABLE analytics_events_p2001_01 (LIKE analytics_events)")
    planned = await jobs.plan(rdb, today, RetentionPolicy())
    assert [a.target for a in planned if a.reason == service.LEFTOVER_REASON] == [doomed.name]

    actions = await jobs.run(rdb, today, RetentionPolicy())

    left = [a for a in actions if a.target == doomed.name]
    assert [(a.action, a.status) for a in left] == [("drop_partition", "done")]
    assert not await rdb.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", doomed.name)
    assert await rdb.pool.fetchval("SELECT to_regclass('analytics_events_p2001_01') IS NOT NULL")
    # Asked to drop it anyway, the drop refuses.
    with pytest.raises(NotDetachedByRetention, match="not a table retention detached"):
        await jobs.drop_detached(rdb, RetentionPolicy(), "analytics_events", "analytics_events_p2001_01")
