"""``corp-astro bench results``: per-metric experiment results against the bare SQL of their sums.

One experiment with ``--units`` (1,000,000) assigned users and ``--events`` (10,000,000) events over 30
days: 1 primary, 3 secondary and 2 guardrail metrics (a capped sum, a count in a 72 h window, a
binomial, a ratio, a count guardrail and a retention guardrail), CUPED on with a 14-day lookback.

- **Results**: ``experiments.service.results`` in-process (the code behind ``GET .../results``: the
  conversion counts, SRM, power and the per-metric statement, then the statistics in Python).
- **Bare SQL**: a hand-written statement computing the same per-variant sufficient statistics (n, Σy,
  Σy², Σx, Σx², Σxy, the cap, the ratio's cross product): the least the results can cost.

Data is generated in SQL (``generate_series``, 1M rows per transaction, FK triggers skipped) into a
scratch database kept for later runs of the same size (``--regenerate`` rebuilds it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import click

from bench.kit import scratch_database
from kernel.db import resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_results"]

_CHUNK = 1_000_000
_DAYS = 30
_NAME = "bench-metrics"

# Events: 10 % purchases (with an ``amount`` property), 40 % sessions, 20 % app opens, 5 % errors.
_EVENTS = """
INSERT INTO analytics_events (event_id, user_id, event_name, event_category, "timestamp", message_id)
SELECT md5('r' || i)::uuid, md5('u' || ((i * 2654435761) % $3::bigint))::uuid,
       CASE WHEN i % 20 < 2 THEN 'purchase' WHEN i % 20 < 10 THEN 'session_start'
            WHEN i % 20 < 14 THEN 'app_open' WHEN i % 20 = 14 THEN 'error' ELSE 'page_view' END,
       'bench', $4::timestamp + ((i * 40503) % ($5::bigint * 86400)) * interval '1 second', 'm' || i
FROM generate_series($1::bigint, $2::bigint) AS i
"""
_PROPERTIES = """
INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
SELECT md5('p' || i)::uuid, md5('r' || i)::uuid, 'amount',
       CASE WHEN i % 1000 = 0 THEN 'n/a' ELSE (((i * 31) % 20000) / 100.0)::text END,
       $3::timestamp + ((i * 40503) % ($4::bigint * 86400)) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 20 < 2
"""

METRICS: list[dict[str, Any]] = [
    {"name": "revenue", "kind": "sum", "event": "purchase", "property": "amount", "cap_percentile": 0.99, "direction": "increase"},
    {"name": "purchases_72h", "kind": "count", "event": "purchase", "window_hours": 72, "direction": "increase"},
    {"name": "purchased", "kind": "binomial", "event": "purchase", "direction": "increase"},
    {"name": "sessions", "kind": "count", "event": "session_start", "direction": "increase"},
    {"name": "revenue_per_session", "kind": "ratio", "numerator": "revenue", "denominator": "sessions", "direction": "increase"},
    {"name": "errors", "kind": "count", "event": "error", "direction": "decrease"},
    {"name": "d1_7_retention", "kind": "retention", "event": "app_open", "retention_days": [1, 7], "direction": "increase"},
]  # fmt: skip

# The same sums written by hand: one pass over the metric events joined to the assignments, per unit,
# then per variant (caps from the pooled non-zero unit values).
_BARE = """
WITH u AS (SELECT variant_id, user_id, assigned_at FROM ab_test_assignments WHERE test_id = $1),
pu AS (
    SELECT u.variant_id,
      coalesce(sum(p.v) FILTER (WHERE e.event_name = 'purchase' AND e."timestamp" >= u.assigned_at), 0) AS rev,
      coalesce(sum(p.v) FILTER (WHERE e.event_name = 'purchase' AND e."timestamp" < u.assigned_at
                                AND e."timestamp" >= u.assigned_at - interval '14 days'), 0) AS rev_pre,
      count(*) FILTER (WHERE e.event_name = 'purchase' AND e."timestamp" >= u.assigned_at
                       AND e."timestamp" < u.assigned_at + interval '72 hours') AS pur,
      count(*) FILTER (WHERE e.event_name = 'purchase' AND e."timestamp" < u.assigned_at
                       AND e."timestamp" >= u.assigned_at - interval '14 days') AS pur_pre,
      (count(*) FILTER (WHERE e.event_name = 'session_start' AND e."timestamp" >= u.assigned_at))::float8 AS ses,
      (count(*) FILTER (WHERE e.event_name = 'session_start' AND e."timestamp" < u.assigned_at
                        AND e."timestamp" >= u.assigned_at - interval '14 days'))::float8 AS ses_pre,
      count(*) FILTER (WHERE e.event_name = 'error' AND e."timestamp" >= u.assigned_at) AS err,
      count(*) FILTER (WHERE e.event_name = 'error' AND e."timestamp" < u.assigned_at
                       AND e."timestamp" >= u.assigned_at - interval '14 days') AS err_pre,
      bool_or(e.event_name = 'purchase' AND e."timestamp" >= u.assigned_at)::int AS conv,
      bool_or(e.event_name = 'purchase' AND e."timestamp" < u.assigned_at
              AND e."timestamp" >= u.assigned_at - interval '14 days')::int AS conv_pre,
      bool_or(e.event_name = 'app_open' AND e."timestamp" >= u.assigned_at + interval '1 day'
              AND e."timestamp" < u.assigned_at + interval '7 days')::int AS ret,
      bool_or(e.event_name = 'app_open' AND e."timestamp" < u.assigned_at
              AND e."timestamp" >= u.assigned_at - interval '14 days')::int AS ret_pre
    FROM analytics_events e
    JOIN u ON u.user_id = e.user_id
    LEFT JOIN event_properties pp ON pp.event_id = e.event_id AND pp."timestamp" = e."timestamp"
         AND pp.property_name = 'amount' AND e.event_name = 'purchase'
    CROSS JOIN LATERAL (SELECT CASE WHEN pp.property_value ~ '^[0-9.]+$' THEN pp.property_value::float8 END AS v) p
    WHERE e.event_name IN ('purchase', 'session_start', 'error', 'app_open') AND e."timestamp" >= $2
    GROUP BY u.variant_id, u.user_id
), cap AS (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY rev) FILTER (WHERE rev <> 0) AS c FROM pu)
SELECT variant_id, count(*),
       sum(least(rev, c)), sum(least(rev, c) ^ 2), sum(least(rev_pre, c)), sum(least(rev_pre, c) ^ 2),
       sum(least(rev, c) * least(rev_pre, c)), sum(least(rev, c) * ses),
       sum(pur), sum(pur ^ 2), sum(pur_pre), sum(pur_pre ^ 2), sum(pur * pur_pre),
       sum(ses), sum(ses ^ 2), sum(ses_pre), sum(ses_pre ^ 2), sum(ses * ses_pre),
       sum(err), sum(err ^ 2), sum(err_pre), sum(err_pre ^ 2), sum(err * err_pre),
       sum(conv), sum(conv_pre), sum(conv * conv_pre), sum(ret), sum(ret_pre), sum(ret * ret_pre)
FROM pu, cap GROUP BY variant_id
"""


async def _connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"}, command_timeout=7200)
    # JSON columns as the app's pool decodes them (the audit log's details).
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _define(conn: asyncpg.Connection, start: dt.date, units: int, events: int) -> None:
    """The metrics and the experiment, through the service (as the API would)."""
    from experiments import service
    from experiments.metric_schemas import MetricCreate
    from experiments.schemas import ExperimentCreate, VariantIn
    from experiments.service import metrics
    from kernel.auth import AuthUser

    actor = AuthUser(uuid.uuid4(), "admin", "bench@bench.invalid")
    async with conn.transaction():
        for m in METRICS:
            await metrics.create_metric(conn, MetricCreate(**m), actor)
        half = VariantIn("control", Decimal(50)), VariantIn("treatment", Decimal(50))
        data = ExperimentCreate(
            name=_NAME, start_date=start, variants=list(half), description="generating",
            primary_metric="revenue", secondary_metrics=["purchases_72h", "purchased", "revenue_per_session"],
            guardrail_metrics=["errors", "d1_7_retention"],
        )  # fmt: skip
        await service.create_experiment(conn, data, actor)


async def _generate(url: str, units: int, events: int, start: dt.datetime) -> None:
    conn = await _connect(url)
    try:
        t0 = time.perf_counter()
        await conn.execute(
            """INSERT INTO users (user_id, email, password_hash, first_name, last_name)
               SELECT md5('u' || j)::uuid, 'bench-' || j || '@bench.invalid', 'x', 'Bench', 'User'
               FROM generate_series(0, $1 - 1) AS j""",
            units,
        )
        await _define(conn, start.date(), units, events)
        test_id = await conn.fetchval("SELECT test_id FROM ab_tests WHERE name = $1", _NAME)
        # Exposed over the last 16 days, so every unit has 14 days of history before it.
        await conn.execute(
            """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, assigned_at)
               SELECT $1, v.variant_id, md5('u' || j)::uuid,
                      $3::timestamp + interval '14 days' + ((j * 7919) % (16 * 86400)) * interval '1 second'
               FROM generate_series(0, $2::bigint - 1) AS j
               JOIN ab_test_variants v ON v.test_id = $1 AND v.position = j % 2""",
            test_id, units, start,
        )  # fmt: skip
        with click.progressbar(range(0, events, _CHUNK), label=f"generating {events:,} events") as bar:
            for lo in bar:
                hi = min(events, lo + _CHUNK) - 1
                async with conn.transaction():
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(_EVENTS, lo, hi, units, start, _DAYS)
                    await conn.execute(_PROPERTIES, lo, hi, start, _DAYS)
        await conn.execute("VACUUM ANALYZE analytics_events, event_properties, ab_test_assignments, users")
        # Complete: later runs of the same size reuse it.
        await conn.execute("UPDATE ab_tests SET description = $2 WHERE name = $1", _NAME, f"{units}/{events}")
        click.echo(f"generated in {time.perf_counter() - t0:.0f} s")
    finally:
        await conn.close()


async def _timed(fn: Any) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def _split_last_day(conn: asyncpg.Connection, test_id: uuid.UUID, start: dt.date) -> dt.datetime:
    """Make the last day's events "new": the state is reset, its horizon is now, and the last day's events
    get a later ``created_at`` (each run rewrites them); returns the horizon."""
    await conn.execute("DELETE FROM experiment_unit_values WHERE test_id = $1", test_id)
    await conn.execute("DELETE FROM experiment_unit_value_marks WHERE test_id = $1", test_id)
    split: dt.datetime = await conn.fetchval("SELECT LOCALTIMESTAMP")
    await asyncio.sleep(0.01)
    last_day = dt.datetime.combine(start, dt.time()) + dt.timedelta(days=_DAYS - 1)
    await conn.execute(
        'UPDATE analytics_events SET created_at = LOCALTIMESTAMP WHERE "timestamp" >= $1', last_day
    )
    await conn.execute("VACUUM ANALYZE analytics_events")
    return split


async def _state_phases(conn: asyncpg.Connection, runs: int, results: Any) -> dict[str, Any]:
    """The state's build (all events but the last day's), results with the last day not yet folded (the
    request folds it), and the job's fold of that day."""
    from experiments import unit_state_repository
    from experiments.service import get_experiment, metric_results, unit_state
    from experiments.service.metrics import analysis_of

    exp = await get_experiment(conn, _NAME)
    plan = metric_results.Plan.of(await analysis_of(conn, exp.test_id))
    split = await _split_last_day(conn, exp.test_id, exp.start_date)
    out: dict[str, Any] = {}

    async def refresh(hi: dt.datetime | None) -> None:
        async with conn.transaction():
            hi = hi or await unit_state_repository.horizon(conn)
            out.setdefault("rows", []).append(
                await unit_state.refresh(conn, exp, plan.parts, plan.history, hi)
            )

    out["build"] = await _timed(lambda: refresh(split))
    out["lag_events"] = await conn.fetchval(
        "SELECT count(*) FROM analytics_events WHERE created_at >= $1 AND event_name = ANY($2::text[])",
        split, sorted({p.event for p in plan.parts if p.event}),
    )  # fmt: skip
    out["lagging"] = [await _timed(results) for _ in range(runs)]
    out["fold"] = await _timed(lambda: refresh(None))
    return out


async def _measure(url: str, runs: int, live_runs: int, warmup: bool) -> dict[str, Any]:
    from experiments import service
    from experiments.service import unit_state

    conn = await _connect(url)
    try:
        test_id, start = await conn.fetchrow(
            "SELECT test_id, start_date FROM ab_tests WHERE name = $1", _NAME
        )
        since = dt.datetime.combine(start, dt.time())
        holder: dict[str, Any] = {}

        async def results() -> None:
            async with conn.transaction():
                holder["out"] = await service.results(conn, _NAME)

        async def bare() -> None:
            async with conn.transaction():
                await conn.execute("SET LOCAL work_mem = '256MB'")
                await conn.fetch(_BARE, test_id, since)

        async def live() -> None:
            kept, unit_state.MAX_LAG = unit_state.MAX_LAG, dt.timedelta(-1)  # never current: live
            try:
                await results()
                holder["live"] = holder["out"]
            finally:
                unit_state.MAX_LAG = kept

        if warmup:  # the events into the OS cache, once for all
            await bare()
        out = await _state_phases(conn, runs, results)
        # Alternate, so that background load on a shared machine hits each.
        out.update(state=[], sql=[], live=[])
        for i in range(runs):
            if i < live_runs:
                out["live"].append(await _timed(live))
            out["state"].append(await _timed(results))
            out["sql"].append(await _timed(bare))
        out["out"], out["gap"] = holder["out"], _gap(holder["out"], holder.get("live"))
        return out
    finally:
        await conn.close()


def _gap(state: Any, live: Any) -> float | None:
    """The largest relative difference between the two answers' means, totals and p-values."""
    if live is None:
        return None
    worst = 0.0
    for a, b in zip(state.metrics, live.metrics, strict=True):
        pairs = [(x.mean, y.mean) for x, y in zip(a.variants, b.variants, strict=True)]
        pairs += [(x.total, y.total) for x, y in zip(a.variants, b.variants, strict=True)]
        pairs += [(x.p_value, y.p_value) for x, y in zip(a.comparisons, b.comparisons, strict=True)]
        for x, y in pairs:
            if x is not None and y is not None and (x or y):
                worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
    return worst


def _line(label: str, xs: list[float]) -> str:
    return (
        f"  {label:38} median {statistics.median(xs):.3f} s over {len(xs)} runs {[round(x, 3) for x in xs]}"
    )


@click.command("results")
@click.option("--units", default=1_000_000, show_default=True, help="Assigned users.")
@click.option("--events", default=10_000_000, show_default=True, help="Events over 30 days.")
@click.option("--runs", default=5, show_default=True, help="Measured runs of each (median reported).")
@click.option("--live-runs", default=1, show_default=True, help="Runs of the live (no state) results.")
@click.option("--regenerate", is_flag=True, help="Rebuild the scratch database even if present.")
@click.option(
    "--warmup/--no-warmup", default=True, show_default=True, help="One unmeasured bare SQL run first."
)
def bench_results(units: int, events: int, runs: int, live_runs: int, regenerate: bool, warmup: bool) -> None:
    """Per-metric results (6 metrics, CUPED) from the per-unit state, live, and the bare SQL of the same
    sufficient statistics; the state's build and the fold of a day of events."""
    from kernel import migrate

    server = resolve_database_url(get_settings())
    url, generate = asyncio.run(
        scratch_database(server, "corp_astro_bench_results", _NAME, f"{units}/{events}", regenerate)
    )
    if generate:
        migrate.upgrade(url, "heads")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        asyncio.run(_generate(url, units, events, now - dt.timedelta(days=_DAYS)))
    else:
        migrate.upgrade(url, "heads")  # the state's tables on a database generated before them
    m = asyncio.run(_measure(url, runs, live_runs, warmup))
    r, s = statistics.median(m["state"]), statistics.median(m["sql"])
    click.echo(
        f"{units:,} assigned units, {events:,} events over {_DAYS} days, 6 metrics (1 + 3 + 2), CUPED 14 days"
    )
    click.echo(_line("results from the state (current):", m["state"]))
    click.echo(_line("bare SQL of the same sums:", m["sql"]))
    click.echo(_line("results live (no state):", m["live"]))
    click.echo(_line(f"results, {m['lag_events']:,} events not folded:", m["lagging"]))
    click.echo(f"  state build (29 days' events): {m['build']:.3f} s, {m['rows'][0]:,} unit rows")
    click.echo(
        f"  job fold of the last day ({m['lag_events']:,} metric events): {m['fold']:.3f} s, {m['rows'][1]:,} rows"
    )
    click.echo(f"  ratio state results / bare SQL: {r / s:.2f}x (goal <= 1.5x; results goal <= 2 s)")
    click.echo(f"  state vs live answer: largest relative difference {m['gap']} (means, totals, p-values)")
    primary = m["out"].metrics[0]
    click.echo(
        f"  check: {primary.metric} means {[round(v.mean or 0, 4) for v in primary.variants]}, "
        f"cap {primary.cap_value}, skipped {primary.skipped_values:,}"
    )
