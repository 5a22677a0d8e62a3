"""Dropping an events partition takes its locks in ingest's order, so a flush in flight cannot deadlock it.

A flush locks the users it references first (``FOR KEY SHARE``, the ledger's first statement), then
writes ``analytics_events``. Dropping a detached events partition also drops its foreign key to
``users``, which needs ACCESS EXCLUSIVE on ``users``; taken after the DETACH (which locks
``analytics_events``) that is the reverse order, and PostgreSQL aborts one side with a deadlock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg

from kernel.db import Database
from retention import jobs
from retention import repository as repo
from retention.schemas import RetentionPolicy, add_months
from tests.integration.retention.conftest import insert_events, partition_names


async def _waiting_on_lock(db: Database, pid: int) -> bool:
    state = await db.pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(state == "Lock")


async def test_drop_waits_for_a_flush_instead_of_deadlocking(rdb: Database, rdb_url: str) -> None:
    today = dt.datetime.now(dt.UTC).date()
    doomed = add_months(today, -30)
    await insert_events(rdb, [dt.datetime.combine(doomed.replace(day=3), dt.time(12))], props=0)
    await jobs.run(rdb, doomed, RetentionPolicy(), upkeep_only=True)
    async with rdb.transaction() as conn:
        parts = {p.name: p for p in await repo.list_partitions(conn, "analytics_events")}
        props = {p.name: p for p in await repo.list_partitions(conn, "event_properties")}
        await repo.detach_and_drop(conn, props[f"event_properties_p{doomed:%Y_%m}"], lock_timeout_ms=5_000)
        user_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO users (user_id, email, password_hash, first_name, last_name) VALUES ($1, 'a@b.c', 'x', 'A', 'B')",
            user_id,
        )
    doomed_events = parts[f"analytics_events_p{doomed:%Y_%m}"]

    flush = await asyncpg.connect(rdb_url)
    try:
        tx = flush.transaction()
        await tx.start()
        # What a flush does first: lock the users its events reference.
        await flush.fetch("SELECT user_id FROM users WHERE user_id = $1 FOR KEY SHARE", user_id)

        dropper_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def drop() -> None:
            async with rdb.transaction() as conn:
                dropper_pid.set_result(await conn.fetchval("SELECT pg_backend_pid()"))
                await repo.detach_and_drop(conn, doomed_events, lock_timeout_ms=10_000)

        dropping = asyncio.create_task(drop())
        pid = await dropper_pid
        for _ in range(200):
            if await _waiting_on_lock(rdb, pid):
                break
            await asyncio.sleep(0.01)
        assert await _waiting_on_lock(rdb, pid), "the drop should be waiting for the flush"
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
