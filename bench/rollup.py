"""``corp-astro bench rollup``: the daily rollup job (ADBC + Polars) against PostgreSQL GROUP BY, and export.

Synthetic events are generated once, with SQL ``generate_series``, into a dedicated database on the same
server (``--database``), and reused by later runs. Both sides compute the same output for the same 30 days:
hourly and daily rollups (events, distinct people, devices, sessions) and exact DAU/WAU/MAU per day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import click
import psutil

from kernel.db import Database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["rollup_bench"]

DAYS = 30
PERSON = "coalesce(user_id::text, external_user_id, anonymous_id)"


class PeakRss:
    """Samples this process's RSS every 20 ms while active (the kernel's ru_maxrss only ever grows)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.02)

    @contextmanager
    def watch(self) -> Iterator[PeakRss]:
        self.peak = self._proc.memory_info().rss
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._stop.clear()


def _with_database(url: str, name: str) -> str:
    head, _, tail = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{tail}" if tail else "")


async def _ensure_database(url: str, name: str) -> str:
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(url, name)


_GENERATE_EVENTS = """
WITH u AS (SELECT array_agg(user_id ORDER BY email) AS ids FROM users WHERE email LIKE 'bench-%')
INSERT INTO analytics_events (event_id, user_id, event_name, event_category, device_id, session_id, ip_address,
                              user_agent, "timestamp", created_at, source_id, message_id, external_user_id,
                              anonymous_id, received_at)
SELECT md5(i::text)::uuid,
       CASE WHEN i % 10 < 4 THEN u.ids[1 + (i * 7) % array_length(u.ids, 1)] END,
       'event_' || (i % 20),
       'category_' || (i % 5),
       CASE WHEN i % 9 <> 0 THEN 'device-' || ((i * 7919) % 300000) END,
       'session-' || (i / 25),
       '203.0.113.' || (i % 250),
       'CorpAstro/3.2 (iPhone; iOS 18.1)',
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second',
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second' + interval '3 seconds',
       NULL,
       'msg-' || i,
       CASE WHEN i % 10 BETWEEN 4 AND 6 THEN 'external-' || ((i * 31) % 150000) END,
       CASE WHEN i % 10 >= 7 THEN 'anon-' || ((i * 17) % 400000) END,
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second' + interval '3 seconds'
FROM generate_series($4::bigint, $5::bigint) AS i, u
"""

_GENERATE_PROPERTIES = """
INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
SELECT md5('p' || i || n)::uuid, md5(i::text)::uuid, n,
       CASE n WHEN 'screen' THEN 'screen-' || (i % 40) ELSE 'plan "pro"' END,
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second'
FROM generate_series($4::bigint, $5::bigint) AS i, unnest(ARRAY['screen', 'plan']) AS n
WHERE i % 2 = 0 AND (n = 'screen' OR i % 4 = 0)
"""


async def _generate(url: str, events: int, start: dt.date) -> None:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await conn.execute("TRUNCATE analytics_events, event_properties, users CASCADE")
        await conn.execute(
            """INSERT INTO users (email, password_hash, first_name, last_name)
               SELECT 'bench-' || lpad(i::text, 6, '0') || '@example.com', 'x', 'Bench', 'User'
               FROM generate_series(1, 50000) AS i"""
        )
        seconds = DAYS * 86400
        chunk = 1_000_000
        with click.progressbar(range(0, events, chunk), label=f"generating {events:,} events") as bar:
            for lo in bar:
                hi = min(events, lo + chunk) - 1
                args = (dt.datetime.combine(start, dt.time()), seconds, events, lo, hi)
                async with conn.transaction():
                    # Generated data is consistent by construction: skip per-row FK triggers for speed.
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(_GENERATE_EVENTS, *args)
                    await conn.execute(_GENERATE_PROPERTIES, *args)
        await conn.execute("ANALYZE analytics_events; ANALYZE event_properties")
    finally:
        await conn.close()


async def _postgres_baseline(url: str, start: dt.date) -> tuple[float, bool]:
    """The same outputs with GROUP BY in PostgreSQL; returns seconds and whether they equal ours."""
    lo = dt.datetime.combine(start, dt.time())
    hi = lo + dt.timedelta(days=DAYS)
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"}, command_timeout=3600)
    try:
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                f"""CREATE TEMP TABLE b_hourly ON COMMIT DROP AS
                    SELECT date_trunc('hour', "timestamp") AS period, event_name, event_category, count(*) AS events,
                           count(DISTINCT {PERSON}) AS users, count(DISTINCT device_id) AS devices,
                           count(DISTINCT session_id) AS sessions
                    FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1, 2, 3""",
                lo,
                hi,
            )
            await conn.execute(
                f"""CREATE TEMP TABLE b_daily ON COMMIT DROP AS
                    SELECT "timestamp"::date AS day, event_name, event_category, count(*) AS events,
                           count(DISTINCT {PERSON}) AS users, count(DISTINCT device_id) AS devices,
                           count(DISTINCT session_id) AS sessions
                    FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1, 2, 3""",
                lo,
                hi,
            )
            # People per day first (as our job does), then each day's 1/7/30-day distinct counts.
            await conn.execute(
                f"""CREATE TEMP TABLE b_people ON COMMIT DROP AS
                    SELECT DISTINCT "timestamp"::date AS day, {PERSON} AS person
                    FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2 AND {PERSON} IS NOT NULL""",
                lo - dt.timedelta(days=29),
                hi,
            )
            # Exact WAU/MAU without a 30-fold join: each person-day covers the days [day, day + w) up to
            # the person's next active day, so the spans are disjoint and a running sum counts people.
            await conn.execute(
                """CREATE TEMP TABLE b_active ON COMMIT DROP AS
                   WITH p AS (
                       SELECT day, lead(day) OVER (PARTITION BY person ORDER BY day) AS next_day FROM b_people
                   ), deltas AS (
                       SELECT day AS d, 1 AS dw, 1 AS dm FROM p
                       UNION ALL SELECT least(coalesce(next_day, day + 7), day + 7), -1, 0 FROM p
                       UNION ALL SELECT least(coalesce(next_day, day + 30), day + 30), 0, -1 FROM p
                   ), per_day AS (
                       SELECT d, sum(dw) AS dw, sum(dm) AS dm FROM deltas GROUP BY d
                   ), running AS (
                       SELECT g::date AS day,
                              sum(coalesce(dw, 0)) OVER (ORDER BY g) AS wau,
                              sum(coalesce(dm, 0)) OVER (ORDER BY g) AS mau
                       FROM generate_series($1::date - 29, $2::date, interval '1 day') AS g
                       LEFT JOIN per_day ON per_day.d = g::date
                   )
                   SELECT r.day, coalesce(n.dau, 0)::bigint AS dau, r.wau::bigint AS wau, r.mau::bigint AS mau
                   FROM running r
                   LEFT JOIN (SELECT day, count(*) AS dau FROM b_people GROUP BY day) n ON n.day = r.day
                   WHERE r.day >= $1""",
                start,
                start + dt.timedelta(days=DAYS - 1),
            )
            elapsed = time.perf_counter() - t0
            mismatches = await conn.fetchval(
                """SELECT (SELECT count(*) FROM (
                              SELECT * FROM b_hourly EXCEPT
                              SELECT period, event_name, event_category, events, users, devices, sessions
                              FROM event_rollups_hourly) x)
                        + (SELECT count(*) FROM (
                              SELECT * FROM b_daily EXCEPT
                              SELECT day, event_name, event_category, events, users, devices, sessions
                              FROM event_rollups_daily) y)
                        + (SELECT count(*) FROM (
                              SELECT * FROM b_active EXCEPT
                              SELECT day, dau, wau, mau FROM active_users_daily) z)
                        + (SELECT count(*) FROM event_rollups_daily WHERE day >= $1 AND day < $2)
                        - (SELECT count(*) FROM b_daily)""",
                start,
                start + dt.timedelta(days=DAYS),
            )
        return elapsed, mismatches == 0
    finally:
        await conn.close()


async def _prepare(url: str, events: int, regenerate: bool) -> dt.date:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        # The current month's partition and the next one exist from the first migration on.
        month: dt.date = await conn.fetchval("SELECT date_trunc('month', CURRENT_DATE)::date")
        have = await conn.fetchval("SELECT count(*) FROM analytics_events")
        first: dt.date | None = await conn.fetchval('SELECT min("timestamp")::date FROM analytics_events')
    finally:
        await conn.close()
    if regenerate or have != events:
        await _generate(url, events, month)
        return month
    assert first is not None
    return first


async def _reset_rollups(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "TRUNCATE event_rollups_hourly, event_rollups_daily, active_users_daily, active_user_sets, "
            "aggregation_runs, rollup_finalisations"
        )
        # Warm the cache for both contenders alike.
        await conn.fetchval("SELECT count(*) FROM analytics_events")
    finally:
        await conn.close()


async def _polars_job(url: str, start: dt.date) -> float:
    from aggregation.jobs import aggregate_range

    db = Database(url, max_size=2)
    await db.open()
    try:
        t0 = time.perf_counter()
        results = await aggregate_range(db, start, start + dt.timedelta(days=DAYS - 1), ("daily",))
        elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise click.ClickException(f"rollup failed: {failed[0].error}")
    return elapsed


@click.command("rollup")
@click.option("--events", default=10_000_000, show_default=True, help="Synthetic events over 30 days.")
@click.option("--database", default="corp_astro_bench_rollup", show_default=True, help="Bench database name.")
@click.option("--regenerate", is_flag=True, help="Regenerate the synthetic events even if present.")
def rollup_bench(events: int, database: str, regenerate: bool) -> None:
    """Daily rollup job (ADBC + Polars) vs PostgreSQL GROUP BY on the same events; export throughput."""
    from kernel import migrate

    server = resolve_database_url(get_settings())
    url = asyncio.run(_ensure_database(server, database))
    migrate.upgrade(url, "heads")
    start = asyncio.run(_prepare(url, events, regenerate))
    click.echo(f"events: {events:,} over {DAYS} days from {start} (database {database})")
    asyncio.run(_reset_rollups(url))

    rss = PeakRss()
    with rss.watch():
        polars_s = asyncio.run(_polars_job(url, start))
    job_rss = rss.peak
    postgres_s, same = asyncio.run(_postgres_baseline(url, start))

    from aggregation.exports import write_dataset

    out = Path(tempfile.mkdtemp(prefix="corp-astro-export-bench-"))
    try:
        with rss.watch():
            t0 = time.perf_counter()
            stats = write_dataset(url, start, start + dt.timedelta(days=DAYS - 1), out / "events")
            export_s = time.perf_counter() - t0
        export_rss = rss.peak
    finally:
        shutil.rmtree(out, ignore_errors=True)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    mb = 1024 * 1024
    ratio = polars_s / postgres_s
    click.echo(f"daily rollup job (ADBC + Polars): {polars_s:8.2f} s   peak RSS {job_rss / mb:7.1f} MB")
    click.echo(
        f"PostgreSQL GROUP BY (same output): {postgres_s:8.2f} s   outputs identical: {'yes' if same else 'NO'}"
    )
    click.echo(f"ratio Polars / PostgreSQL:          {ratio:8.2f}    (goal <= 0.5)")
    click.echo(
        f"export: {stats.rows:,} events, {stats.files} files, {stats.bytes / mb:.1f} MB in {export_s:.2f} s = "
        f"{stats.rows / export_s:,.0f} events/s (goal >= 500,000)   peak RSS {export_rss / mb:.1f} MB"
    )
    click.echo(f"process peak RSS (ru_maxrss, whole run): {max_rss / mb:.1f} MB (goal <= 500 MB)")
