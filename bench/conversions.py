"""``corp-astro bench conversions``: one incremental run of the goal-event conversion job on a small and
on a large history of events, with the same assignments and the same batch of newly ingested events.

The job reads only the goal events ingested since its watermark (docs/conversions.md), so its cost
should follow the batch, not the history: the goal is the large run within 2x of the small one.

Each size has its own scratch database on the configured server, generated in SQL (``generate_series``)
and kept for later runs (``--regenerate`` rebuilds it). Every measured run is rolled back, so each one
reads the same events from the same watermarks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import click

from kernel.db import recreate_database, resolve_database_url, url_for_database
from kernel.settings import get_settings

__all__ = ["bench_conversions"]

GOALS = ("purchase", "signup", "checkout_completed")
# Users, the first ASSIGNED of them assigned to each of the three tests.
USERS = 100_000
ASSIGNED = 50_000
HISTORY_DAYS = 60
# Generated per statement: one transaction each, so a 10M history is not one huge transaction.
CHUNK = 1_000_000

# Historical events: 60% with a user; 3 names in 20 are goals. Ingested (created_at) 3 s after their
# time, so all of them lie well before the job's first watermark.
_HISTORY = """
INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", created_at,
                              received_at, message_id)
SELECT md5('h' || i)::uuid,
       CASE WHEN i % 10 < 6 THEN md5('u' || ((i * 7919) % $6))::uuid END,
       CASE i % 20 WHEN 0 THEN 'purchase' WHEN 1 THEN 'signup' WHEN 2 THEN 'checkout_completed'
                   ELSE 'event_' || (i % 20) END,
       'bench',
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second',
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second' + interval '3 seconds',
       $1::timestamp + (i * ($2::float8 / $3)) * interval '1 second' + interval '3 seconds',
       'hist-' || i
FROM generate_series($4::bigint, $5::bigint) AS i
"""

# The batch the measured run reads: goal events of assigned users over the last two days (late data
# included), and four times as many other events, all ingested now (created_at's default).
_BATCH = """
INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", message_id)
SELECT md5('n' || i)::uuid,
       md5('u' || ((i * 31) % $2))::uuid,
       CASE WHEN i % 5 = 0 THEN (ARRAY['purchase', 'signup', 'checkout_completed'])[1 + (i / 5) % 3]
            ELSE 'event_' || (3 + i % 17) END,
       'bench',
       LOCALTIMESTAMP - (i % 2880) * interval '1 minute',
       'new-' || i
FROM generate_series(0, $1::int * 5 - 1) AS i
"""


@dataclass
class _Figures:
    events: int
    first_run_s: float
    wall_ms: list[float]
    buffers: list[int]
    changed: int
    read_by_scan: str

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def pages(self) -> float:
        return statistics.median(self.buffers)


async def _connect(url: str) -> asyncpg.Connection:
    # UTC, as the app's sessions: created_at and the watermarks are naive UTC.
    return await asyncpg.connect(url, server_settings={"timezone": "UTC"}, command_timeout=3600)


async def _database(server: str, name: str, events: int, regenerate: bool) -> tuple[str, bool]:
    """The scratch database's URL, and whether it must be (re)generated."""
    admin = await _connect(url_for_database(server, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    url = url_for_database(server, name)
    if exists and not regenerate:
        conn = await _connect(url)
        try:
            have = await conn.fetchval("SELECT count(*) FROM analytics_events WHERE message_id LIKE 'hist-%'")
        except asyncpg.PostgresError:
            have = -1
        finally:
            await conn.close()
        if have == events:
            return url, False
    return await recreate_database(server, name), True


async def _generate(url: str, events: int, now: dt.datetime) -> None:
    conn = await _connect(url)
    try:
        await conn.execute(
            """INSERT INTO users (user_id, email, password_hash, first_name, last_name)
               SELECT md5('u' || j)::uuid, 'bench-' || j || '@bench.invalid', 'x', 'Bench', 'User'
               FROM generate_series(0, $1 - 1) AS j""",
            USERS,
        )
        start = now - dt.timedelta(days=HISTORY_DAYS)
        for k, goal in enumerate(GOALS):
            test_id = await conn.fetchval(
                """INSERT INTO ab_tests (name, start_date, goal_event) VALUES ($1, $2, $3) RETURNING test_id""",
                f"bench-{goal}",
                start.date(),
                goal,
            )
            await conn.execute(
                """INSERT INTO ab_test_variants (test_id, name, traffic_percentage, position, is_control)
                   VALUES ($1, 'control', 50, 0, true), ($1, 'treatment', 50, 1, false)""",
                test_id,
            )
            # Assigned over the 30 days before now, each test's users in their own order.
            await conn.execute(
                """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, assigned_at)
                   SELECT $1, v.variant_id, md5('u' || j)::uuid,
                          $3::timestamp - ((j * 7 + $4) % $2) * (2592000.0 / $2) * interval '1 second'
                   FROM generate_series(0, $2 - 1) AS j
                   JOIN ab_test_variants v ON v.test_id = $1 AND v.position = j % 2""",
                test_id,
                ASSIGNED,
                now,
                k,
            )
        span = (HISTORY_DAYS * 86400) - 3600  # the history ends an hour ago
        with click.progressbar(range(0, events, CHUNK), label=f"generating {events:,} events") as bar:
            for lo in bar:
                async with conn.transaction():
                    # Generated rows are consistent by construction: skip the per-row FK triggers.
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(_HISTORY, start, span, events, lo, min(events, lo + CHUNK) - 1, USERS)
        await conn.execute("VACUUM ANALYZE analytics_events, ab_test_assignments, ab_tests")
    finally:
        await conn.close()


async def _reset(conn: asyncpg.Connection) -> float:
    """Back to "history only, never converted", then the first (catch-up) run; its seconds."""
    from experiments.service import convert_goal_events

    await conn.execute("DELETE FROM analytics_events WHERE message_id LIKE 'new-%'")
    await conn.execute("TRUNCATE experiment_conversion_watermarks")
    await conn.execute(
        "UPDATE ab_test_assignments SET converted = false, converted_at = NULL WHERE converted"
    )
    t0 = time.perf_counter()
    async with conn.transaction():
        await convert_goal_events(conn)
    return time.perf_counter() - t0


def _scan_nodes(plan: dict[str, Any]) -> list[str]:
    """How the plan reads analytics_events: the indexes (partition prefix dropped) and any seq scans."""
    found = []
    index = str(plan.get("Index Name", ""))
    if index.startswith("analytics_events"):
        found.append("index " + re.sub(r"^analytics_events_(p\d{4}_\d{2}|default)_", "<partition>_", index))
    relation = str(plan.get("Relation Name", ""))
    if relation.startswith("analytics_events") and plan["Node Type"] == "Seq Scan":
        found.append(f"seq scan of {relation} ({plan.get('Actual Rows', 0)} rows)")
    for child in plan.get("Plans", []):
        found.extend(_scan_nodes(child))
    return found


async def _explain(conn: asyncpg.Connection) -> tuple[int, list[str]]:
    """Shared buffers (hit + read) of the job's conversion statement, and how it reads events."""
    from experiments.conversion_repository import _CONVERT_GOALS  # the statement itself, as it runs
    from experiments.service.conversions import goal_scans

    scans, _ = await goal_scans(conn)
    raw = await conn.fetchval(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _CONVERT_GOALS,
        [s.test_id for s in scans],
        [s.goal_event for s in scans],
        [s.ingested_since for s in scans],
        [s.earliest for s in scans],
        [s.until for s in scans],
    )
    top = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]), _scan_nodes(top)


async def _measure(name: str, events: int, batch: int, runs: int, regenerate: bool, server: str) -> _Figures:
    from experiments.service import convert_goal_events
    from kernel import migrate

    url, generate = await _database(server, name, events, regenerate)
    await asyncio.to_thread(migrate.upgrade, url, "heads")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if generate:
        await _generate(url, events, now)
    conn = await _connect(url)
    try:
        first = await _reset(conn)
        await conn.execute(_BATCH, batch, ASSIGNED)
        await conn.execute("ANALYZE analytics_events")
        wall: list[float] = []
        buffers: list[int] = []
        changed = 0
        nodes: list[str] = []
        for i in range(runs + 1):  # the first is a warm-up
            tx = conn.transaction()
            await tx.start()
            try:
                t0 = time.perf_counter()
                changed = await convert_goal_events(conn)
                elapsed = (time.perf_counter() - t0) * 1000
            finally:
                await tx.rollback()
            tx = conn.transaction()
            await tx.start()
            try:
                pages, nodes = await _explain(conn)
            finally:
                await tx.rollback()
            if i:
                wall.append(elapsed)
                buffers.append(pages)
    finally:
        await conn.close()
    return _Figures(events, first, wall, buffers, changed, "; ".join(sorted(set(nodes))))


def _report(f: _Figures, batch: int) -> None:
    click.echo(
        f"  {f.events:>12,} historical events: first (catch-up) run {f.first_run_s:7.2f} s; "
        f"incremental run over {batch:,} new goal events (+{4 * batch:,} others): "
        f"median {f.wall:8.1f} ms wall, {f.pages:,.0f} shared buffers (hit + read); "
        f"{f.changed:,} assignments changed"
    )
    click.echo(f"      events read through: {f.read_by_scan}")


@click.command("conversions")
@click.option("--small", default=100_000, show_default=True, help="Historical events, small database.")
@click.option("--large", default=10_000_000, show_default=True, help="Historical events, large database.")
@click.option(
    "--batch", default=2_000, show_default=True, help="New goal events ingested after the watermark."
)
@click.option("--runs", default=7, show_default=True, help="Measured runs per size (median reported).")
@click.option("--regenerate", is_flag=True, help="Rebuild the scratch databases even if present.")
def bench_conversions(small: int, large: int, batch: int, runs: int, regenerate: bool) -> None:
    """One incremental goal-event conversion run on a small and a large history: cost and ratio."""
    server = resolve_database_url(get_settings())
    click.echo(
        f"{USERS:,} users; 3 tests x {ASSIGNED:,} assignments; history over {HISTORY_DAYS} days; "
        f"{runs} measured runs per size, each rolled back"
    )
    figures = []
    for size, name in (
        (small, "corp_astro_bench_conversions_small"),
        (large, "corp_astro_bench_conversions_large"),
    ):
        f = asyncio.run(_measure(name, size, batch, runs, regenerate, server))
        _report(f, batch)
        figures.append(f)
    lo, hi = figures
    click.echo(
        f"ratio large / small: wall {hi.wall / lo.wall:.2f}x, buffers {hi.pages / lo.pages:.2f}x "
        f"(goal <= 2x) for {hi.events / lo.events:,.0f}x the history"
    )
