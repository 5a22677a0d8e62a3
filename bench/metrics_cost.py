"""The cost of the metrics on the ingest hot path: ``bench ingest``'s peak phase with metrics on and off.

``python -m bench.metrics_cost``: one scratch database, then ``--rounds`` rounds, each starting a real
``corp-astro serve`` with ``CORP_ASTRO_METRICS=1`` and one with ``=0`` (the order alternating between
rounds, so drift in the machine's load falls on both), each warmed for 2 s and then driven by
``bench ingest``'s closed loop (K keep-alive clients posting 100-event batches back to back). Prints
each run's events/s and the medians' ratio (off / on), with the 1-minute load average.
"""

from __future__ import annotations

import asyncio
import os
import statistics

import click
import uvloop

from bench.ingest.copy import setup
from bench.ingest.traffic import BodyFactory, Server, closed_loop
from kernel import migrate
from kernel.db import recreate_database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["main"]

_SCRATCH_DB = "corp_astro_bench_metrics"


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the server and its worker processes."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def _peak(
    url: str, factory: BodyFactory, metrics: bool, clients: int, seconds: float, workers: int
) -> tuple[float, float]:
    server = Server(url, {"CORP_ASTRO_METRICS": "1" if metrics else "0"}, workers)
    try:
        server.wait_ready(120.0)

        async def run() -> tuple[float, float]:
            await closed_loop(server.port, factory, clients, 2.0)  # warm-up
            cpu0 = _server_cpu(server.proc.pid)
            result = await closed_loop(server.port, factory, clients, seconds)
            cpu_us = (_server_cpu(server.proc.pid) - cpu0) * 1e6 / max(1, result.events_ok)
            return result.events_ok / result.seconds, cpu_us

        return uvloop.run(run())
    finally:
        server.stop()


@click.command()
@click.option("--clients", "-k", default=32, show_default=True)
@click.option("--seconds", default=8.0, show_default=True, help="Measured closed-loop seconds per run.")
@click.option("--rounds", default=3, show_default=True)
@click.option("--workers", default=1, show_default=True)
def main(clients: int, seconds: float, rounds: int, workers: int) -> None:
    """Ingest peak events/s with metrics on and off, alternating, in one run."""
    base = resolve_database_url(get_settings())
    url = asyncio.run(recreate_database(base, _SCRATCH_DB))
    migrate.upgrade(url, "heads")
    _source, write_key, users = asyncio.run(setup(url, 1000))
    factory = BodyFactory(users, write_key)
    click.echo(f"machine: {os.cpu_count()} CPUs, 1-minute load {os.getloadavg()[0]:.1f} at start")
    rates: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for metrics in (True, False) if r % 2 == 0 else (False, True):
            rate, cpu_us = _peak(url, factory, metrics, clients, seconds, workers)
            rates[metrics].append(rate)
            cpus[metrics].append(cpu_us)
            click.echo(
                f"  round {r + 1} metrics {'on ' if metrics else 'off'}: {rate:,.0f} events/s, "
                f"server CPU {cpu_us:.1f} us/event (load {os.getloadavg()[0]:.1f})"
            )
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    cpu_on, cpu_off = statistics.median(cpus[True]), statistics.median(cpus[False])
    click.echo(f"median events/s: metrics on {on:,.0f}, off {off:,.0f}; on/off = {on / off:.3f}")
    click.echo(
        f"median server CPU per event: on {cpu_on:.1f} us, off {cpu_off:.1f} us; on/off = {cpu_on / cpu_off:.3f} "
        f"(1-minute load {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
