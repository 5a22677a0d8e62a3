"""``corp-astro bench daily``: the daily results series with its closed days stored, against computing
every day again.

The data of ``bench results`` (``--units`` assigned users exposed over 16 days, ``--events`` over 30 days,
6 metrics with CUPED), in a scratch database of its own kept for later runs of the same size.

- **Recompute**: ``daily_results(cached=False)``, one run of the results statement per day (what the
  endpoint did before ``experiment_daily_results``).
- **Fill**: the daily job storing every closed day once (``run_daily_results``), a one-off cost.
- **Cached**: ``daily_results()`` as ``GET .../results/daily`` runs it with every closed day stored: the
  late-data check, the stored rows and today's point computed live; and the closed days alone (the check
  and the stored rows, ``daily_cache.refresh``).

The generated events are given ``created_at`` = their timestamp (when an app would have sent them), so the
closed days' events are older than the watermark, as in production.

Both answers are compared: equal to 1e-9 relative (the results statement sums floats in whatever order
its hash aggregate meets the units, so two recomputes differ from each other in the last bits too).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from typing import Any

import click
import msgspec

from bench.kit import scratch_database
from bench.results import _NAME, _generate
from kernel.db import resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_daily"]

_DAYS = 30


def _close(a: Any, b: Any) -> bool:
    """Equal structures whose floats agree to 1e-9 relative."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


async def _measure(url: str, runs: int) -> tuple[list[float], float, int, list[float], list[float], bool]:
    from experiments.jobs import run_daily_results
    from experiments.service import daily, daily_cache
    from experiments.service.daily import daily_results
    from experiments.service.daily_cache import Budget
    from kernel.auth import utcnow
    from kernel.db import Database

    db = Database(url, max_size=2)
    await db.open()
    try:

        async def answer(cached: bool) -> Any:
            async with db.transaction() as conn:
                return msgspec.to_builtins(await daily_results(conn, _NAME, cached=cached))

        async with db.transaction() as conn:
            await conn.execute("DELETE FROM experiment_daily_results")
        recompute: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            expected = await answer(False)
            recompute.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        filled = await run_daily_results(db, Budget(10_000, float("inf")))
        fill = time.perf_counter() - t0
        cached: list[float] = []
        same = True
        for _ in range(runs):
            t0 = time.perf_counter()
            got = await answer(True)
            cached.append(time.perf_counter() - t0)
            same = same and _close(got, expected)
        closed: list[float] = []
        for _ in range(runs):
            async with db.transaction() as conn:
                exp, plan, units, first = await daily._setup(conn, _NAME)
                assert first is not None
                days = [d for d in daily._days(exp, first, utcnow().date()) if d < utcnow().date()]
                t0 = time.perf_counter()
                stored = await daily_cache.refresh(conn, exp, plan, units, days, write=True)
                closed.append(time.perf_counter() - t0)
                assert len(stored) == len(days)
        return recompute, fill, filled, cached, closed, same
    finally:
        await db.close()


async def _ingested_when_sent(url: str) -> None:
    """Each generated event ingested at its own timestamp (the bench generates them all at once)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            'UPDATE analytics_events SET created_at = "timestamp" WHERE created_at > "timestamp"'
        )
        await conn.execute("VACUUM ANALYZE analytics_events")
    finally:
        await conn.close()


@click.command("daily")
@click.option("--units", default=100_000, show_default=True, help="Assigned users.")
@click.option("--events", default=1_000_000, show_default=True, help="Events over 30 days.")
@click.option("--runs", default=3, show_default=True, help="Measured runs of each (median reported).")
@click.option("--regenerate", is_flag=True, help="Rebuild the scratch database even if present.")
def bench_daily(units: int, events: int, runs: int, regenerate: bool) -> None:
    """Daily results series: stored closed days (+ today live) against recomputing every day."""
    from kernel import migrate

    server = resolve_database_url(get_settings())
    url, generate = asyncio.run(
        scratch_database(server, "corp_astro_bench_daily", _NAME, f"{units}/{events}", regenerate)
    )
    migrate.upgrade(url, "heads")
    if generate:
        import datetime as dt

        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        asyncio.run(_generate(url, units, events, now - dt.timedelta(days=_DAYS)))
        asyncio.run(_ingested_when_sent(url))
    recompute, fill, filled, cached, closed, same = asyncio.run(_measure(url, runs))
    r, c = statistics.median(recompute), statistics.median(cached)
    click.echo(
        f"{units:,} assigned units, {events:,} events over {_DAYS} days, 6 metrics (1 + 3 + 2), CUPED 14 days"
    )
    click.echo(
        f"  recompute every day:          median {r:.3f} s over {runs} runs {[round(x, 3) for x in recompute]}"
    )
    click.echo(f"  job storing the closed days:  {fill:.3f} s for {filled} days (once)")
    click.echo(
        f"  stored days + today live:     median {c:.3f} s over {runs} runs {[round(x, 3) for x in cached]}"
    )
    click.echo(
        f"  closed days alone (check + stored rows): median {statistics.median(closed):.3f} s {[round(x, 3) for x in closed]}"
    )
    click.echo(f"  ratio recompute / cached: {r / c:.1f}x; answers equal (1e-9): {same}")
    if not same:
        raise click.ClickException("the stored series differs from the recompute")
