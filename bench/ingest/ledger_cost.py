"""What the exactly-once ledger costs PostgreSQL: ``python -m bench.ingest.ledger_cost [--fill N]``.

Flush transactions of 2,000 events (and their 10,000 property rows, built by the server's mapping from
``bench ingest``'s batches) are written three ways, alternating, on one connection: without a ledger;
with the ledger as ingest writes it (``ingest.ledger``: the bounded start, the previous week's look-up,
the sorted COPY of the claims); and with the single-table ledger it replaced (uuid primary key,
``first_seen_at`` default, BRIN index, COPY in a savepoint). The event and property rows are binary COPY
payloads encoded once, so the client's CPU stays out of it; the backend's CPU is read from
``/proc/<pid>/stat``, the WAL from ``pg_current_wal_lsn()``. ``--fill N`` first puts N claims per day of the
window in each ledger (7 N in the single table, 7 N in last week's partition and 4 N in this week's), as
in a steady state; the single table's hourly prune of one day (N rows, as ``ingest.jobs`` did: DELETE in
50,000-row batches, then VACUUM) is measured too, per row, since each event's claim is pruned once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import click

from bench.ingest.copy import ledger_keys, prebuilt_rows, setup
from bench.ingest.traffic import BodyFactory
from ingest import ledger
from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS
from kernel import migrate
from kernel.db import recreate_database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["main"]

_DB = "corp_astro_bench_ledger"
_TICK = os.sysconf("SC_CLK_TCK")
_SINGLE = """CREATE TABLE IF NOT EXISTS bench_single_ledger (
               event_id uuid PRIMARY KEY, first_seen_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
             CREATE INDEX IF NOT EXISTS bench_single_ledger_brin ON bench_single_ledger USING brin (first_seen_at)"""
_PRUNE = """DELETE FROM bench_single_ledger WHERE event_id IN (
              SELECT event_id FROM bench_single_ledger WHERE first_seen_at < $1 LIMIT 50000)"""
Chunk = tuple[bytes, bytes, list[Any]]


def _backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _encode(conn: asyncpg.Connection, table: str, columns: tuple[str, ...], rows: list[Any]) -> bytes:
    """``rows`` as one binary COPY payload (PostgreSQL encodes them, from a temporary copy of ``table``)."""
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS enc_{table} (LIKE {table} INCLUDING DEFAULTS)")
    await conn.execute(f"TRUNCATE enc_{table}")
    await conn.copy_records_to_table(f"enc_{table}", records=rows, columns=columns)
    out = io.BytesIO()
    cols = ", ".join(f'"{c}"' for c in columns)
    await conn.copy_from_query(f"SELECT {cols} FROM enc_{table}", output=out, format="binary")
    return out.getvalue()


async def _flush_none(conn: asyncpg.Connection, chunk: Chunk) -> None:
    await conn.copy_to_table(
        "analytics_events", source=io.BytesIO(chunk[0]), columns=EVENT_COLUMNS, format="binary"
    )
    await conn.copy_to_table(
        "event_properties", source=io.BytesIO(chunk[1]), columns=PROPERTY_COLUMNS, format="binary"
    )


async def _flush_week(conn: asyncpg.Connection, chunk: Chunk) -> None:
    """The ledger's part of the flush exactly as ``ingest.pipeline`` runs it (the fast path)."""
    begun = await ledger.begin(conn, chunk[2], 7, 10.0)
    claims = sorted(i for i in chunk[2] if i not in begun.seen)
    for week in ledger.claim_weeks(begun.started):
        await ledger.copy_claims(conn, claims, week, 10.0)
    await _flush_none(conn, chunk)


async def _flush_single(conn: asyncpg.Connection, chunk: Chunk) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table(
            "bench_single_ledger", records=[(i,) for i in chunk[2]], columns=("event_id",)
        )
    await _flush_none(conn, chunk)


_WAYS: dict[str, Callable[[asyncpg.Connection, Chunk], Awaitable[None]]] = {
    "no ledger": _flush_none,
    "ledger by week": _flush_week,
    "single-table ledger": _flush_single,
}


async def _prepare(url: str, events: int) -> list[Chunk]:
    """The bench's batches mapped by the server's code, 2,000 events per chunk, encoded once."""
    source_id, key, users = await setup(url, 1000)
    chunks = prebuilt_rows(BodyFactory(users, key), source_id, set(users), events // 100, 2_000)
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await conn.execute(_SINGLE)
        return [
            (
                await _encode(conn, "analytics_events", EVENT_COLUMNS, ev),
                await _encode(conn, "event_properties", PROPERTY_COLUMNS, pr),
                [key for (key,) in ledger_keys(ev)],
            )
            for ev, pr in chunks
        ]
    finally:
        await conn.close()


async def _fill(conn: asyncpg.Connection, per_day: int) -> None:
    """A steady state: ``per_day`` claims for each day of the window in each ledger."""
    this_week = ledger.week_of(dt.datetime.now(dt.UTC).date())
    for week, days in ((this_week - dt.timedelta(days=7), 7), (this_week, 4)):
        await conn.execute(
            "INSERT INTO ingest_message_ids (message_key, week) SELECT gen_random_uuid(), $1 "
            "FROM generate_series(1, $2)",
            week,
            per_day * days,
        )
    await conn.execute(
        "INSERT INTO bench_single_ledger SELECT gen_random_uuid(), "
        "now() AT TIME ZONE 'UTC' - make_interval(secs => g % (7 * 86400)) FROM generate_series(1, $1) g",
        per_day * 7,
    )
    await conn.execute("VACUUM ANALYZE ingest_message_ids")
    await conn.execute("VACUUM ANALYZE bench_single_ledger")


async def _run(conn: asyncpg.Connection, way: str, chunks: list[Chunk]) -> tuple[float, float]:
    """Backend CPU µs and WAL bytes per event of writing ``chunks`` one transaction each."""
    await conn.execute("TRUNCATE analytics_events, event_properties")
    await conn.execute("CHECKPOINT")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
    cpu = _backend_cpu(pid)
    for chunk in chunks:
        async with conn.transaction():
            await _WAYS[way](conn, chunk)
    used = _backend_cpu(pid) - cpu
    wal = await conn.fetchval("SELECT pg_current_wal_lsn() - $1::pg_lsn", lsn)
    n = sum(len(c[2]) for c in chunks)
    # The claims just made are removed again, so every round starts from the same ledgers.
    ids = [i for c in chunks for i in c[2]]
    await conn.execute("DELETE FROM ingest_message_ids WHERE message_key = ANY($1::uuid[])", ids)
    await conn.execute("DELETE FROM bench_single_ledger WHERE event_id = ANY($1::uuid[])", ids)
    return used / n * 1e6, float(wal) / n


async def _prune(conn: asyncpg.Connection, per_day: int) -> tuple[int, float, float]:
    """The single table's prune of its oldest day (``per_day`` rows): rows, CPU µs and WAL bytes per row."""
    await conn.execute(
        "INSERT INTO bench_single_ledger SELECT gen_random_uuid(), "
        "now() AT TIME ZONE 'UTC' - make_interval(days => 8, secs => g % 86400) FROM generate_series(1, $1) g",
        per_day,
    )
    await conn.execute("VACUUM ANALYZE bench_single_ledger")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
    cpu = _backend_cpu(pid)
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=7, hours=1)
    rows = 0
    while (n := int((await conn.execute(_PRUNE, cutoff)).split()[-1])) > 0:
        rows += n
    await conn.execute("VACUUM bench_single_ledger")
    used = _backend_cpu(pid) - cpu
    wal = await conn.fetchval("SELECT pg_current_wal_lsn() - $1::pg_lsn", lsn)
    return rows, used / max(rows, 1) * 1e6, float(wal) / max(rows, 1)


async def _bench(url: str, events: int, fill: int, rounds: int) -> None:
    chunks = await _prepare(url, events)
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        if fill:
            await _fill(conn, fill)
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(rounds):
            for way in _WAYS:
                results.setdefault(way, []).append(await _run(conn, way, chunks))
        n = sum(len(c[2]) for c in chunks)
        click.echo(
            f"{n:,} events (2,000 per transaction), {fill:,} claims per day of the window, {rounds} rounds:"
        )
        for way, runs in results.items():
            cpu = statistics.median(r[0] for r in runs)
            wal = statistics.median(r[1] for r in runs)
            each = ", ".join(f"{r[0]:.1f}" for r in runs)
            click.echo(
                f"    {way:20s} PostgreSQL backend CPU {cpu:5.1f} us/event ({each}); WAL {wal:,.0f} B/event"
            )
        if fill:
            rows, cpu, wal = await _prune(conn, fill)
            click.echo(
                f"    single-table ledger's prune of one day ({rows:,} rows, then VACUUM): {cpu:.1f} us and {wal:,.0f} B of WAL per row"
            )
    finally:
        await conn.close()


@click.command()
@click.option("--events", default=60_000, show_default=True, help="Events per round and way.")
@click.option(
    "--fill", default=0, show_default=True, help="Claims per day of the window already in the ledgers."
)
@click.option("--rounds", default=3, show_default=True)
def main(events: int, fill: int, rounds: int) -> None:
    """PostgreSQL's CPU per event for flushes without a ledger, with ingest's, and with the one it replaced."""
    started = time.monotonic()
    url = asyncio.run(recreate_database(resolve_database_url(get_settings()), _DB))
    migrate.upgrade(url, "heads")
    click.echo(f"load {os.getloadavg()[0]:.1f} at start")
    asyncio.run(_bench(url, events, fill, rounds))
    click.echo(f"load {os.getloadavg()[0]:.1f} at end; {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
