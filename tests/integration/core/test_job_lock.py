"""A job's run-long lock (kernel.scheduler.job_lock) holds no pooled connection: runs that each hold it
while using the pool for their work never wait on each other for connections."""

from __future__ import annotations

import asyncio

import asyncpg

from kernel.db import Database
from kernel.scheduler import job_lock


async def test_as_many_runs_as_the_pool_has_connections_all_finish(clean_db: str) -> None:
    db = Database(clean_db, max_size=2)
    await db.open()
    started = asyncio.Barrier(3)

    async def run(key: str) -> int:
        async with job_lock(db, key) as mine:
            assert mine
            await started.wait()  # every run holds its lock before any asks the pool for work
            async with db.transaction() as conn:
                value: int = await conn.fetchval("SELECT 1")
                return value

    try:
        # Three runs on a pool of two: with the lock on a pooled connection, two would hold both
        # connections and wait for a third forever.
        done = await asyncio.wait_for(asyncio.gather(*(run(f"job-{i}") for i in range(3))), 30)
    finally:
        await db.close()
    assert done == [1, 1, 1]


async def test_a_second_holder_is_refused_until_the_first_ends(clean_db: str) -> None:
    db = Database(clean_db, max_size=2)
    await db.open()
    try:
        async with job_lock(db, "one-job") as first, job_lock(db, "one-job") as second:
            assert (first, second) == (True, False)
        async with job_lock(db, "one-job") as again:
            assert again
    finally:
        await db.close()


async def test_the_lock_holds_no_transaction_open(clean_db: str, conn: asyncpg.Connection) -> None:
    """An open transaction would hold back what reads up to the oldest one (the unit-state fold)."""
    db = Database(clean_db, max_size=1)
    await db.open()
    try:
        async with job_lock(db, "long-job") as mine:
            assert mine
            open_ones = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            )
            assert open_ones == 0
    finally:
        await db.close()
