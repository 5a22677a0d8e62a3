"""Part (a) of ``corp-astro bench ingest``: the scratch database, pre-built rows and raw binary COPY."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
import uuid
from typing import Any

import asyncpg

from bench.ingest.traffic import BENCH_DB, BodyFactory
from kernel.db import recreate_database, url_for_database

__all__ = [
    "count_rows",
    "db_url",
    "fk_costs",
    "ledger_keys",
    "prebuilt_rows",
    "raw_copy",
    "recreate",
    "setup",
    "truncate_tables",
]


def db_url(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return url_for_database(url, name)


async def recreate(url: str) -> str:
    """The scratch benchmark database, dropped and created anew."""
    return await recreate_database(url, BENCH_DB)


async def truncate_tables(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE analytics_events, event_properties, ingest_message_ids")
        await conn.execute("ANALYZE users")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def raw_copy(
    url: str,
    chunks: list[tuple[list[Any], list[Any]]],
    connections: int,
    *,
    ledger: bool = False,
    truncate: bool = True,
) -> float:
    """Events/s of binary COPY of ``chunks`` (one transaction each) over ``connections`` connections.

    ``ledger`` also COPYs each message's key into ``ingest_message_ids``, as the server's flush does (the
    keys are made before the clock starts).
    """
    from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS

    if truncate:
        await truncate_tables(url)
    conns = [await asyncpg.connect(url, server_settings={"timezone": "UTC"}) for _ in range(connections)]
    queue = [(ev, pr, ledger_keys(ev) if ledger else []) for ev, pr in chunks]
    events = sum(len(e) for e, _ in chunks)

    async def work(conn: asyncpg.Connection) -> None:
        while queue:
            ev, pr, keys = queue.pop()
            async with conn.transaction():
                if ledger:
                    await conn.copy_records_to_table(
                        "ingest_message_ids", records=keys, columns=("message_key",)
                    )
                await conn.copy_records_to_table("analytics_events", records=ev, columns=EVENT_COLUMNS)
                await conn.copy_records_to_table("event_properties", records=pr, columns=PROPERTY_COLUMNS)

    started = time.perf_counter()
    await asyncio.gather(*(work(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        await c.close()
    return events / elapsed


_FK_PROPERTIES = """ALTER TABLE event_properties ADD CONSTRAINT bench_fk_event FOREIGN KEY (event_id, "timestamp")
       REFERENCES analytics_events (event_id, "timestamp") ON DELETE CASCADE"""
_FK_USERS = "fk_analytics_events_user_id_users"


async def fk_costs(url: str, sets: list[list[tuple[list[Any], list[Any]]]], rounds: int) -> dict[str, float]:
    """Single-connection COPY rates of fresh rows under three FK configurations: the median of
    ``rounds`` interleaved runs each (the machine is shared, so single runs are noisy).

    Measured on tables already holding rows and ANALYZEd, each in a fresh session: on empty tables the
    FK checks' cached plans are seq scans, which exaggerates their cost many times over.
    """
    conn = await asyncpg.connect(url)
    runs: dict[str, list[float]] = {}
    try:
        await raw_copy(url, sets[0], 1)
        await conn.execute("ANALYZE analytics_events; ANALYZE event_properties; ANALYZE users")
        add_users_fk = f"""ALTER TABLE analytics_events ADD CONSTRAINT {_FK_USERS} FOREIGN KEY (user_id)
                           REFERENCES users (user_id) ON DELETE SET NULL"""
        configs: tuple[tuple[str, list[str], list[str]], ...] = (
            ("schema_users_fk_only", [], []),
            (
                "seed_both_fks",
                [_FK_PROPERTIES],
                ["ALTER TABLE event_properties DROP CONSTRAINT bench_fk_event"],
            ),
            ("no_fks", [f"ALTER TABLE analytics_events DROP CONSTRAINT {_FK_USERS}"], [add_users_fk]),
        )
        remaining = iter(sets[1:])
        for _ in range(rounds):
            for label, before, after in configs:
                for sql in before:
                    await conn.execute(sql)
                runs.setdefault(label, []).append(await raw_copy(url, next(remaining), 1, truncate=False))
                for sql in after:
                    await conn.execute(sql)
        return {label: statistics.median(values) for label, values in runs.items()}
    finally:
        await conn.close()


def ledger_keys(events: list[Any]) -> list[tuple[Any]]:
    """The ledger's rows for ``events`` (full rows in COPY column order): each message's key,
    uuid5(source_id, messageId), sorted as the flush sorts its claims."""
    from ingest.mapping import EVENT_COLUMNS, message_key

    source, message = EVENT_COLUMNS.index("source_id"), EVENT_COLUMNS.index("message_id")
    return sorted((message_key(row[source], row[message]),) for row in events)


def prebuilt_rows(
    factory: BodyFactory, source_id: uuid.UUID, users: set[str], batches: int, per_txn: int
) -> list[tuple[list[Any], list[Any]]]:
    """Rows exactly as the server would write them, grouped ``per_txn`` events per transaction."""
    import msgspec

    from ingest.mapping import USER_ID_SLOT, RequestInfo, map_events
    from ingest.schemas import BatchEnvelope

    info = RequestInfo(source_id, dt.datetime.now(dt.UTC).replace(tzinfo=None), "127.0.0.1", "bench")
    chunks: list[tuple[list[Any], list[Any]]] = []
    ev: list[Any] = []
    pr: list[Any] = []
    for _ in range(batches):
        env = msgspec.json.decode(factory.next(), type=BatchEnvelope)
        batch = map_events(env.batch, info, sent_at=env.sentAt)
        for row, props in zip(batch.events, batch.properties, strict=True):
            user = row[USER_ID_SLOT]
            if user is not None and str(user) not in users:
                row = (row[0], None, *row[2:])
            ev.append(row)
            pr.extend(props)
        if len(ev) >= per_txn:
            chunks.append((ev, pr))
            ev, pr = [], []
    if ev:
        chunks.append((ev, pr))
    return chunks


async def setup(url: str, users: int) -> tuple[uuid.UUID, str, list[str]]:
    from ingest import service

    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        async with conn.transaction():
            created = await service.create_source(conn, "bench")
        ids = [uuid.uuid4() for _ in range(users)]
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"bench{n}@example.com", "x", "Bench", "User") for n, u in enumerate(ids)],
            columns=("user_id", "email", "password_hash", "first_name", "last_name"),
        )
    finally:
        await conn.close()
    return created.source_id, created.write_key, [str(u) for u in ids]


async def count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM analytics_events")
        return n
    finally:
        await conn.close()
