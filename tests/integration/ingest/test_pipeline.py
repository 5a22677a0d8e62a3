"""Group commit against the real database: exactly once, isolation of poisoned rows, overload, outages."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

import asyncpg
import msgspec
import orjson
import pytest

from ingest.errors import IngestOverloaded
from ingest.mapping import Batch, RequestInfo, map_events
from ingest.pipeline import Pipeline
from kernel.db import Database
from tests.integration.ingest.conftest import FAST, KeyedSource, count, track
from tests.support import TcpProxy


def make_batch(
    source: KeyedSource, msgs: list[dict[str, object]], sent_at: str | None = None, max_past_months: int = 24
) -> Batch:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    info = RequestInfo(source.source_id, now, "127.0.0.1", "test", max_past_months=max_past_months)
    return map_events([msgspec.Raw(orjson.dumps(m)) for m in msgs], info, sent_at=sent_at)


ORPHANS = 'NOT EXISTS (SELECT 1 FROM analytics_events e WHERE e.event_id = p.event_id AND e."timestamp" = p."timestamp")'


async def test_same_messages_from_two_processes_at_once_are_stored_once(
    db: Database, database_url: str, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    # Two pipelines on two pools stand for two server processes; every round races the same 200
    # messages with a different sentAt, so the corrected timestamps (and the partitions) differ.
    other_db = Database(database_url, max_size=4)
    await other_db.open()
    p1, p2 = Pipeline(db, FAST), Pipeline(other_db, FAST)
    p1.start()
    p2.start()
    try:
        for round_ in range(10):
            msgs = [track(f"r{round_}-{i}") for i in range(200)]
            a = make_batch(source, msgs, "2026-11-20T10:00:01Z")
            b = make_batch(source, msgs, "2026-11-20T09:00:01Z")
            assert a.events[0][8] != b.events[0][8]  # different timestamps, same ledger keys
            o1, o2 = await asyncio.gather(p1.submit(a), p2.submit(b))
            assert o1.accepted + o2.accepted == 200
            assert o1.duplicates + o2.duplicates == 200
    finally:
        await p1.close()
        await p2.close()
        await other_db.close()
    assert await count(conn, "analytics_events") == 2000
    assert await count(conn, "(SELECT DISTINCT event_id FROM analytics_events) d") == 2000
    assert await count(conn, "event_properties") == 4000
    assert await count(conn, "event_properties p", ORPHANS) == 0


async def test_each_worker_runs_its_share_of_the_servers_flushers(db: Database) -> None:
    p = Pipeline(db, dataclasses.replace(FAST, flushers=2, workers=2))
    p.start()
    try:
        assert len(p._workers) == 1
    finally:
        await p.close()


async def test_same_messages_in_one_flush_are_stored_once(
    db: Database, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    p = Pipeline(db, dataclasses.replace(FAST, flush_linger_ms=100.0, flushers=1))
    p.start()
    try:
        msgs = [track(f"same-{i}") for i in range(50)]
        o1, o2 = await asyncio.gather(
            p.submit(make_batch(source, msgs, "2026-11-20T10:00:01Z")),
            p.submit(make_batch(source, msgs + msgs, "2026-11-20T11:00:01Z")),
        )
    finally:
        await p.close()
    assert p.stats["flushes"] == 1
    assert (o1.accepted + o2.accepted, o1.duplicates + o2.duplicates) == (50, 100)
    assert await count(conn, "analytics_events") == 50


async def test_a_claim_held_by_another_transaction_decides_the_outcome(
    pipeline: Pipeline, source: KeyedSource, conn: asyncpg.Connection, database_url: str
) -> None:
    msgs = [track(f"held-{i}") for i in range(20)]
    batch = make_batch(source, msgs)
    keys = batch.keys
    other = await asyncpg.connect(database_url)
    try:
        # Another process has claimed the same messages and not committed yet: the flush waits for it.
        tr = other.transaction()
        await tr.start()
        await other.execute("INSERT INTO ingest_message_ids (message_key) SELECT unnest($1::uuid[])", keys)
        pending = asyncio.create_task(pipeline.submit(batch))
        await asyncio.sleep(0.5)
        assert not pending.done()
        await tr.commit()  # it stored them: ours are duplicates
        outcome = await pending
        assert (outcome.accepted, outcome.duplicates) == (0, 20)

        batch2 = make_batch(source, [track(f"held2-{i}") for i in range(20)])
        tr = other.transaction()
        await tr.start()
        await other.execute(
            "INSERT INTO ingest_message_ids (message_key) SELECT unnest($1::uuid[])",
            batch2.keys,
        )
        pending = asyncio.create_task(pipeline.submit(batch2))
        await asyncio.sleep(0.5)
        await tr.rollback()  # it failed: ours are stored
        outcome = await pending
        assert (outcome.accepted, outcome.duplicates) == (20, 0)
    finally:
        await other.close()
    assert await count(conn, "analytics_events") == 20


async def test_poisoned_row_is_isolated_and_other_requests_are_intact(
    db: Database, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    # The database refuses one row (as with any data error COPY can meet): one flush holds both requests.
    await conn.execute(
        "ALTER TABLE analytics_events ADD CONSTRAINT test_poison CHECK (event_name <> 'poison')"
    )
    p = Pipeline(db, dataclasses.replace(FAST, flush_linger_ms=100.0, flushers=1))
    p.start()
    try:
        bad = [track(f"a{i}") for i in range(9)]
        bad.insert(4, track("a-poison", event="poison"))
        good = [track(f"b{i}") for i in range(10)]
        o_bad, o_good = await asyncio.gather(
            p.submit(make_batch(source, bad)), p.submit(make_batch(source, good))
        )
    finally:
        await p.close()
        await conn.execute("ALTER TABLE analytics_events DROP CONSTRAINT test_poison")
    assert p.stats["isolations"] > 0
    assert (o_good.accepted, o_good.failed) == (10, [])
    assert (o_bad.accepted, o_bad.failed) == (9, [4])
    stored = {r[0] for r in await conn.fetch("SELECT message_id FROM analytics_events")}
    assert stored == {f"a{i}" for i in range(9)} | {f"b{i}" for i in range(10)}
    assert await count(conn, "event_properties") == 38
    assert await count(conn, "event_properties p", ORPHANS) == 0
    assert await count(conn, "ingest_message_ids") == 19  # the refused message can be sent again


async def test_events_outside_every_partition_are_stored(
    pipeline: Pipeline, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    msgs = [
        track("ancient", timestamp="0001-01-01T00:00:00Z"),
        track("import-1999", timestamp="1999-06-01T12:00:00Z"),
        track("epoch", timestamp="1970-01-01T00:00:00Z"),
        track("now"),
    ]
    # A window wide enough for old imports (CORP_ASTRO_INGEST_MAX_PAST_MONTHS); year 1 is never stored.
    batch = make_batch(source, msgs, max_past_months=100 * 12)
    assert [(r.message_id, r.reason) for r in batch.rejected] == [("ancient", "timestamp_out_of_range")]
    outcome = await pipeline.submit(batch)
    assert outcome.accepted == 3
    in_default = {r[0] for r in await conn.fetch("SELECT message_id FROM analytics_events_default")}
    assert {"import-1999", "epoch"} <= in_default
    assert await count(conn, "event_properties_default") >= 4
    assert await count(conn, "event_properties p", ORPHANS) == 0


async def test_full_queue_answers_overloaded_at_once(
    db: Database, source: KeyedSource, conn: asyncpg.Connection, database_url: str
) -> None:
    p = Pipeline(db, dataclasses.replace(FAST, max_pending_events=150, flushers=1))
    p.start()
    blocker = await asyncpg.connect(database_url)
    try:
        tr = blocker.transaction()
        await tr.start()
        await blocker.execute("LOCK TABLE ingest_message_ids IN ACCESS EXCLUSIVE MODE")  # a stuck database
        first = asyncio.create_task(p.submit(make_batch(source, [track(f"q{i}") for i in range(100)])))
        await asyncio.sleep(0.3)
        with pytest.raises(IngestOverloaded) as exc:
            await asyncio.wait_for(p.submit(make_batch(source, [track(f"r{i}") for i in range(100)])), 1)
        assert exc.value.retry_after >= 1
        await tr.rollback()
        assert (await first).accepted == 100
    finally:
        await blocker.close()
        await p.close()
    assert await count(conn, "analytics_events") == 100


async def test_slow_database_times_out_as_overloaded_and_the_retry_is_not_duplicated(
    db: Database, source: KeyedSource, conn: asyncpg.Connection, database_url: str
) -> None:
    p = Pipeline(db, dataclasses.replace(FAST, ack_timeout_seconds=0.5, flushers=1))
    p.start()
    blocker = await asyncpg.connect(database_url)
    msgs = [track(f"slow{i}") for i in range(10)]
    try:
        tr = blocker.transaction()
        await tr.start()
        await blocker.execute("LOCK TABLE ingest_message_ids IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(IngestOverloaded):
            await p.submit(make_batch(source, msgs))
        await tr.rollback()
        retry = await p.submit(make_batch(source, msgs, "2026-11-20T10:00:05Z"))
        assert retry.accepted + retry.duplicates == 10
    finally:
        await blocker.close()
        await p.close()
    assert await count(conn, "analytics_events") == 10


async def test_database_outage_is_overloaded_then_recovers(
    database_url: str, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    proxy = TcpProxy.for_url(database_url)
    proxy.start()
    database = Database(proxy.url_through(database_url), max_size=4)
    await database.open()
    p = Pipeline(database, FAST)
    p.start()
    try:
        assert (await p.submit(make_batch(source, [track("before")]))).accepted == 1
        proxy.cut()
        with pytest.raises(IngestOverloaded):
            await asyncio.wait_for(p.submit(make_batch(source, [track("during")])), 10)
        proxy.start()
        assert (await p.submit(make_batch(source, [track("during")]))).accepted == 1
    finally:
        await p.close()
        await database.close()
        proxy.close()
    assert {r[0] for r in await conn.fetch("SELECT message_id FROM analytics_events")} == {"before", "during"}


async def test_no_event_points_at_a_missing_user_when_users_are_erased_during_ingest(
    pipeline: Pipeline, source: KeyedSource, conn: asyncpg.Connection, database_url: str
) -> None:
    users = [uuid.uuid4() for _ in range(20)]
    await conn.executemany(
        "INSERT INTO users (user_id, email, password_hash, first_name, last_name) VALUES ($1, $2, 'x', 'A', 'B')",
        [(u, f"{u}@example.com") for u in users],
    )
    eraser = await asyncpg.connect(database_url)

    async def erase() -> None:
        # The account-erasure sequence of core_api.accounts: unlink events, then delete the user.
        for u in users[::2]:
            async with eraser.transaction():
                await eraser.execute("UPDATE analytics_events SET user_id = NULL WHERE user_id = $1", u)
                await eraser.execute("DELETE FROM users WHERE user_id = $1", u)
            await asyncio.sleep(0.005)

    async def ingest() -> None:
        for n in range(20):
            msgs = [track(f"u{n}-{i}", userId=str(users[i % len(users)])) for i in range(50)]
            await pipeline.submit(make_batch(source, msgs))

    try:
        await asyncio.gather(ingest(), erase())
    finally:
        await eraser.close()
    assert await count(conn, "analytics_events") == 1000
    assert await count(conn, "analytics_events", "user_id IS NOT NULL") > 0
    missing = "user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = analytics_events.user_id)"
    assert await count(conn, "analytics_events", missing) == 0
    assert await count(conn, "event_properties p", ORPHANS) == 0
