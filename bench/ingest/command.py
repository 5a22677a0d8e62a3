"""``corp-astro bench ingest``: raw binary COPY against end-to-end HTTP ingest, in one run on one machine.

(a) the best raw binary COPY of pre-built rows (1..N connections) into analytics_events/event_properties;
(b) a real ``corp-astro serve`` process fed by K keep-alive clients posting 100-event batches with 5
properties each, closed loop (the peak), then open loop at 80% of the peak (latency) and at 2x the peak
(503s and memory); plus the cost of the seed's FK triggers on the same COPY.

The rows of (a) are produced by the server's own mapping code from the same batches as (b), so both
write the same rows. Everything runs in a scratch database that is dropped and recreated each run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import click

from bench.ingest.copy import count_rows, fk_costs, prebuilt_rows, raw_copy, recreate, setup, truncate_tables
from bench.ingest.cpu import read_cpu
from bench.ingest.traffic import (
    BENCH_DB,
    EVENTS_PER_BATCH,
    PROPS,
    BodyFactory,
    PhaseResult,
    Server,
    closed_loop,
    open_loop,
)
from kernel.db import resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_ingest"]


@click.command("ingest")
@click.option("--clients", "-k", default=32, show_default=True, help="Concurrent keep-alive clients (b).")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each HTTP phase.")
@click.option("--copy-events", default=100_000, show_default=True, help="Events in each raw COPY run (a).")
@click.option("--max-connections", default=3, show_default=True, help="Raw COPY tries 1..N connections.")
@click.option(
    "--workers", default=1, show_default=True, help="Server processes (corp-astro serve --workers)."
)
@click.option(
    "--latency-runs",
    default=5,
    show_default=True,
    help="Open-loop runs at 80% of the peak (p50/p99 of each).",
)
@click.option(
    "--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures here."
)
def bench_ingest(
    clients: int,
    seconds: float,
    copy_events: int,
    max_connections: int,
    workers: int,
    latency_runs: int,
    json_out: Path | None,
) -> None:
    """Raw binary COPY (a) vs end-to-end HTTP ingest (b): events/s, b/a, ack latency, RSS, overload."""
    import uvloop

    from kernel import migrate

    load = os.getloadavg()[0]
    base = resolve_database_url(get_settings())
    url = asyncio.run(recreate(base))
    migrate.upgrade(url, "heads")
    source_id, write_key, users = asyncio.run(setup(url, 1000))
    factory = BodyFactory(users, write_key)
    figures: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(load, 2),
        "clients": clients,
        "workers": workers,
        "seconds": seconds,
        "latency_runs": latency_runs,
    }
    click.echo(f"machine: {os.cpu_count()} CPUs, 1-minute load {load:.1f} at start (shared machine)")

    best = _copy_phase(url, factory, source_id, users, copy_events, max_connections, figures)

    # (b) end to end over HTTP.
    server = Server(url, {}, workers)
    try:
        server.wait_ready()
        peak, at80, at2x = uvloop.run(
            _http_phases(server, factory, clients, seconds, figures, best, latency_runs)
        )
    finally:
        server.stop()
    stored = asyncio.run(count_rows(url))
    expected = peak.events_ok + at80.events_ok + at2x.events_ok + figures["warmup_events"]
    figures.update(stored_events=stored, acknowledged_events=expected)
    click.echo(f"    acknowledged {expected} events; stored {stored} (each acknowledged event exactly once)")
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))
    if stored != expected:
        raise click.ClickException("stored events differ from acknowledged events")


def _copy_phase(
    url: str,
    factory: BodyFactory,
    source_id: uuid.UUID,
    users: list[str],
    copy_events: int,
    max_connections: int,
    figures: dict[str, Any],
) -> float:
    """(a): the best raw COPY rate of the rows the server would write, and the FK triggers' cost."""
    # (a) raw COPY of the rows the server would write, in transactions the size of a full flush.
    batches = max(1, copy_events // EVENTS_PER_BATCH)
    chunks = prebuilt_rows(factory, source_id, set(users), batches, 5_000)
    rows = sum(len(p) for _, p in chunks)
    click.echo(
        f"(a) raw binary COPY of {batches * EVENTS_PER_BATCH} pre-built events ({rows} property rows):"
    )
    asyncio.run(raw_copy(url, chunks, 1))  # warm-up: caches, statistics, WAL segments
    best = 0.0
    for n in range(1, max_connections + 1):
        rate = max(asyncio.run(raw_copy(url, chunks, n)) for _ in range(2))
        figures[f"copy_{n}conn_events_per_s"] = round(rate)
        click.echo(f"    {n} connection(s): {rate:,.0f} events/s")
        best = max(best, rate)
    figures["copy_best_events_per_s"] = round(best)
    ledger = max(asyncio.run(raw_copy(url, chunks, n, ledger=True)) for n in range(1, max_connections + 1))
    figures["copy_best_with_ledger_events_per_s"] = round(ledger)
    click.echo(f"    best with the exactly-once ledger COPY in the same transaction: {ledger:,.0f} events/s")

    # The seed's FK triggers on the same kind of rows (20k events per run, one connection, warm stats).
    rounds = 3
    fk_sets = [prebuilt_rows(factory, source_id, set(users), 200, 5_000) for _ in range(1 + 3 * rounds)]
    fk = asyncio.run(fk_costs(url, fk_sets, rounds))
    figures.update({f"fk_{k}_events_per_s": round(v) for k, v in fk.items()})
    click.echo(
        "    FK triggers, 1 connection, median of 3: no FKs {no_fks:,.0f}; users FK only (this schema) "
        "{schema_users_fk_only:,.0f}; seed's both FKs {seed_both_fks:,.0f} events/s".format(**fk)
    )
    del chunks, fk_sets
    asyncio.run(truncate_tables(url))
    return best


async def _http_phases(
    server: Server,
    factory: BodyFactory,
    clients: int,
    seconds: float,
    figures: dict[str, Any],
    best: float,
    latency_runs: int,
) -> tuple[PhaseResult, PhaseResult, PhaseResult]:
    warm = await closed_loop(server.port, factory, clients, 2.0)
    figures["warmup_events"] = warm.events_ok

    peak, rss_peak = await _peak(server, factory, clients, seconds, figures, best)
    at80, rss_80 = await _at80(server, factory, peak, seconds, figures, latency_runs)
    at2x = await _at2x(server, factory, peak, seconds, figures, rss_peak, rss_80)
    return peak, at80, at2x


async def _peak(
    server: Server, factory: BodyFactory, clients: int, seconds: float, figures: dict[str, Any], best: float
) -> tuple[PhaseResult, list[int]]:
    """The closed-loop peak, the CPU per event of the server, PostgreSQL and the load generator, and the
    RSS samples during it."""
    pids = [server.proc.pid]
    data_dir = get_settings().data_dir
    t0 = time.monotonic()
    cpu0 = read_cpu(pids, BENCH_DB, data_dir)
    peak = await closed_loop(server.port, factory, clients, seconds)
    cpu1 = read_cpu(pids, BENCH_DB, data_dir)
    rss_peak_phase = server.rss_between(t0, time.monotonic())
    ratio = peak.events_per_s / best if best else float("nan")
    server_us, pg_us, gen_us = cpu0.per_event_us(cpu1, peak.events_ok)
    click.echo(
        f"(b) HTTP through `corp-astro serve`, {clients} keep-alive clients, {EVENTS_PER_BATCH}-event batches, "
        f"{PROPS} properties each:"
    )
    click.echo(
        f"    peak {peak.events_per_s:,.0f} events/s ({peak.ok} x 200, {peak.unavailable} x 503, "
        f"{peak.other} other); latency p50 {peak.pct(0.5):.1f} ms, p99 {peak.pct(0.99):.1f} ms"
    )
    click.echo(
        f"    end-to-end {peak.events_per_s:,.0f} events/s / raw COPY {best:,.0f} events/s = {ratio:.2f}"
    )
    click.echo(
        f"    CPU per event at peak: server {server_us:.1f} us, PostgreSQL {pg_us:.1f} us "
        f"({cpu1.postgres_scope}), load generator {gen_us:.1f} us"
    )
    figures.update(
        http_peak_events_per_s=round(peak.events_per_s),
        b_over_a=round(ratio, 3),
        peak_p50_ms=round(peak.pct(0.5), 1),
        peak_p99_ms=round(peak.pct(0.99), 1),
        peak_503=peak.unavailable,
        peak_server_cpu_us_per_event=round(server_us, 1),
        peak_pg_cpu_us_per_event=round(pg_us, 1),
        peak_pg_cpu_scope=cpu1.postgres_scope,
        peak_generator_cpu_us_per_event=round(gen_us, 1),
    )
    return peak, rss_peak_phase


async def _at80(
    server: Server,
    factory: BodyFactory,
    peak: PhaseResult,
    seconds: float,
    figures: dict[str, Any],
    runs: int,
) -> tuple[PhaseResult, list[int]]:
    """Open loop at 80% of the peak, ``runs`` times: latency under a load the server sustains."""
    rate80 = 0.8 * peak.ok / peak.seconds
    t0 = time.monotonic()
    total = PhaseResult(0.0)
    p50s: list[float] = []
    p99s: list[float] = []
    pg_us: list[float] = []
    pids, data_dir = [server.proc.pid], get_settings().data_dir
    for i in range(max(1, runs)):
        cpu0 = read_cpu(pids, BENCH_DB, data_dir)
        at80 = await open_loop(server.port, factory, rate80, seconds)
        # PostgreSQL's CPU per event run by run: it grows as the tables do (docs/performance.md).
        server_us, pg, _ = cpu0.per_event_us(read_cpu(pids, BENCH_DB, data_dir), at80.events_ok)
        pg_us.append(round(pg, 1))
        p50s.append(round(at80.pct(0.5), 1))
        p99s.append(round(at80.pct(0.99), 1))
        click.echo(
            f"    80% of peak, run {i + 1} ({rate80 * EVENTS_PER_BATCH:,.0f} events/s offered, open loop): "
            f"{at80.events_per_s:,.0f} events/s acked, p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, "
            f"{at80.unavailable} x 503; CPU per event: server {server_us:.1f} us, PostgreSQL {pg:.1f} us"
        )
        total.seconds += at80.seconds
        total.ok += at80.ok
        total.unavailable += at80.unavailable
        total.other += at80.other
        total.events_ok += at80.events_ok
        total.latencies_ms += at80.latencies_ms
    rss_80 = server.rss_between(t0, time.monotonic())
    within = sum(1 for p in p99s if p <= 100.0)
    click.echo(f"    80% of peak: p99 <= 100 ms in {within} of {len(p99s)} runs (p99s {p99s})")
    figures.update(
        at80_offered_events_per_s=round(rate80 * EVENTS_PER_BATCH),
        at80_events_per_s=round(total.events_per_s),
        at80_p50_ms=round(total.pct(0.5), 1),
        at80_p99_ms=round(total.pct(0.99), 1),
        at80_p50_ms_runs=p50s,
        at80_p99_ms_runs=p99s,
        at80_pg_cpu_us_per_event_runs=pg_us,
        at80_runs_p99_within_100ms=within,
        at80_503=total.unavailable,
    )
    return total, rss_80


async def _at2x(
    server: Server,
    factory: BodyFactory,
    peak: PhaseResult,
    seconds: float,
    figures: dict[str, Any],
    rss_peak_phase: list[int],
    rss_80: list[int],
) -> PhaseResult:
    """Open loop at twice the peak: 503s instead of unbounded queues, and the memory that shows it."""
    rate2x = 2.0 * peak.ok / peak.seconds
    t0 = time.monotonic()
    at2x = await open_loop(server.port, factory, rate2x, seconds)
    t1 = time.monotonic()
    rss_2x = server.rss_between(t0, t1)
    half = (t0 + t1) / 2
    first, second = server.rss_between(t0, half), server.rss_between(half, t1)
    mb = 1024 * 1024
    click.echo(
        f"    2x peak ({rate2x * EVENTS_PER_BATCH:,.0f} events/s offered, open loop): "
        f"{at2x.events_per_s:,.0f} events/s acked; {at2x.ok} x 200, {at2x.unavailable} x 503, "
        f"{at2x.other} other; p50/p99 of the 200s {at2x.pct(0.5):.0f}/{at2x.pct(0.99):.0f} ms"
    )
    peak_rss = max(rss_peak_phase + rss_80 + rss_2x or [0]) / mb
    click.echo(
        f"    server RSS: peak {peak_rss:.0f} MB; median during the peak run "
        f"{statistics.median(rss_peak_phase or [0]) / mb:.0f} MB; during 2x, max of first half "
        f"{max(first or [0]) / mb:.0f} MB, of second half {max(second or [0]) / mb:.0f} MB"
    )
    figures.update(
        at2x_offered_events_per_s=round(rate2x * EVENTS_PER_BATCH),
        at2x_events_per_s=round(at2x.events_per_s),
        at2x_200=at2x.ok,
        at2x_503=at2x.unavailable,
        at2x_other=at2x.other,
        at2x_p50_ms=round(at2x.pct(0.5), 1),
        at2x_p99_ms=round(at2x.pct(0.99), 1),
        rss_peak_mb=round(peak_rss),
        rss_peak_phase_median_mb=round(statistics.median(rss_peak_phase or [0]) / mb),
        rss_2x_first_half_max_mb=round(max(first or [0]) / mb),
        rss_2x_second_half_max_mb=round(max(second or [0]) / mb),
    )
    return at2x
