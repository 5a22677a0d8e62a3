"""Partition DDL takes its locks in the writers' order, so a writer in flight cannot deadlock it.

Writers of the event tables lock ``users`` first: a flush locks the users it references (``FOR KEY
SHARE``, the ledger's first statement), an account deletion deletes the user and then nulls its events.
The DDL also needs ``users`` (the events' foreign key): DROP of a detached partition ACCESS EXCLUSIVE,
ATTACH SHARE ROW EXCLUSIVE. Taken after the event tables' own locks, that is the reverse order, and
PostgreSQL aborts one side with a deadlock (after deadlock_timeout, 1 s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from kernel.db import Database
from retention import jobs
from retention import repository as repo
from retention.schemas import RetentionPolicy, add_months
from tests.integration.retention.conftest import insert_events, partition_names

T = TypeVar("T")


async def _waiting_on_lock(db: Database, pid: int) -> bool:
    state = await db.pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(state == "Lock")


async def _start_waiting(db: Database, ddl: Callable[[asyncpg.Connection], Awaitable[T]]) -> asyncio.Task[T]:
    """Run ``ddl`` in its own transaction as a task; return once it waits for a lock."""
    pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def run() -> T:
        async with db.transaction() as conn:
            pid.set_result(await conn.fetchval("SELECT pg_backend_pid()"))
            return await ddl(conn)

    task = asyncio.create_task(run())
    backend = await pid
    for _ in range(200):
        if await _waiting_on_lock(db, backend):
            return task
        await asyncio.sleep(0.01)
    raise AssertionError("the DDL should be waiting for the writer")


async def _add_user(db: Database) -> uuid.UUID:
    user_id = uuid.uuid4()
    await db.pool.execute(
        "INSERT INTO users (user_id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'A', 'B')",
        user_id,
        f"{user_id}@example.com",
    )
    return user_id


async def test_drop_waits_for_a_flush_instead_of_deadlocking(rdb: Database, rdb_url: str) -> None:
    today = dt.datetime.now(dt.UTC).date()
    doomed = add_months(today, -30)
    await insert_events(rdb, [dt.datetime.combine(doomed.replace(day=3), dt.time(12))], props=0)
    await jobs.run(rdb, doomed, RetentionPolicy(), upkeep_only=True)
    async with rdb.transaction() as conn:
        parts = {p.name: p for p in await repo.list_partitions(conn, "analytics_events")}
        props = {p.name: p for p in await repo.list_partitions(conn, "event_properties")}
        await repo.detach_and_drop(conn, props[f"event_properties_p{doomed:%Y_%m}"], lock_timeout_ms=5_000)
    user_id = await _add_user(rdb)
    doomed_events = parts[f"analytics_events_p{doomed:%Y_%m}"]

    flush = await asyncpg.connect(rdb_url)
    try:
        tx = flush.transaction()
        await tx.start()
        # What a flush does first: lock the users its events reference.
        await flush.fetch("SELECT user_id FROM users WHERE user_id = $1 FOR KEY SHARE", user_id)
        dropping = await _start_waiting(
            rdb, functools.partial(repo.detach_and_drop, partition=doomed_events, lock_timeout_ms=10_000)
        )
        # Then the flush writes its events. PostgreSQL's deadlock check runs after deadlock_timeout (1 s),
        # so waiting 1.5 s here would have seen one side aborted.
        await flush.execute(
            """INSERT INTO analytics_events (event_id, event_name, event_category, device_id, "timestamp", user_id)
               VALUES (gen_random_uuid(), 'tap', 'track', 'dev-1', now(), $1)""",
            user_id,
        )
        await asyncio.sleep(1.5)
        assert not dropping.done()
        await tx.commit()
        await asyncio.wait_for(dropping, timeout=10)
    finally:
        await flush.close()

    assert doomed_events.name not in await partition_names(rdb, "analytics_events")
    stored = await rdb.pool.fetchval("SELECT count(*) FROM analytics_events WHERE user_id = $1", user_id)
    assert stored == 1


async def test_attach_waits_for_an_account_deletion_instead_of_deadlocking(
    rdb: Database, rdb_url: str
) -> None:
    month = add_months(dt.datetime.now(dt.UTC).date(), -16).replace(day=1)
    assert f"analytics_events_p{month:%Y_%m}" not in await partition_names(rdb, "analytics_events")
    user_id = await _add_user(rdb)

    deletion = await asyncpg.connect(rdb_url)
    try:
        tx = deletion.transaction()
        await tx.start()
        # What an account deletion does first: change the users row (its events' FK action comes after).
        await deletion.execute("UPDATE users SET first_name = 'Z' WHERE user_id = $1", user_id)
        making = await _start_waiting(
            rdb, functools.partial(repo.ensure_month, month=month, lock_timeout_ms=10_000)
        )
        # Then it writes the event tables: here a row of that month, which goes to the default partition.
        await deletion.execute(
            """INSERT INTO analytics_events (event_id, event_name, event_category, device_id, "timestamp", user_id)
               VALUES (gen_random_uuid(), 'tap', 'track', 'dev-1', $1, $2)""",
            dt.datetime.combine(month.replace(day=2), dt.time(9)),
            user_id,
        )
        await asyncio.sleep(1.5)
        assert not making.done()
        await tx.commit()
        created, moved = await asyncio.wait_for(making, timeout=10)
    finally:
        await deletion.close()

    assert (created, moved) == (True, 1)
    in_partition = await rdb.pool.fetchval(
        f"SELECT count(*) FROM analytics_events_p{month:%Y_%m} WHERE user_id = $1", user_id
    )
    assert in_partition == 1
