"""``corp-astro bench webhooks``: delivery throughput against a bare httpx loop, and the latency from
commit to first attempt at 80 % of that throughput.

Three processes: a receiver that answers 200 at once (``bench.webhook_receiver``), a ``corp-astro
serve --scheduler`` whose dispatcher delivers, and this one, which emits events and runs the baseline.

1. Baseline: a bare ``httpx.AsyncClient`` loop posts N signed payloads (the same ``{type, timestamp,
   data}`` bodies, signed per request as the dispatcher signs) with as many requests in flight as the
   dispatcher allows (``endpoints`` x ``CORP_ASTRO_WEBHOOK_ENDPOINT_CONCURRENCY``).
2. Throughput: N/endpoints events committed at once (each fans out to every endpoint: N deliveries);
   the clock runs from the commit until every delivery is recorded delivered in the database (fan-out,
   claim, send, record: the whole pipeline).
3. Latency: one event per transaction, paced at 80 % of the measured rate, for ``--seconds``; for each
   delivery, the receiver's first arrival minus the emitting transaction's commit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from bench.kit import ServeProcess, cpu_seconds, free_port, own_cpu_seconds
from kernel.db import Database, recreate_database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_webhooks"]

BENCH_DB = "corp_astro_bench_webhooks"
_KEY = "bench-webhook-secret-key-0123456789abcdef"
_ENV = {
    "CORP_ASTRO_SECRET_KEY": _KEY,
    "CORP_ASTRO_WEBHOOK_ALLOW_HTTP": "1",
    "CORP_ASTRO_WEBHOOK_ALLOW_NETS": "127.0.0.0/8",
}
_PER_ENDPOINT = 4  # the dispatcher's default CORP_ASTRO_WEBHOOK_ENDPOINT_CONCURRENCY


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def _start_receiver(port: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_receiver", str(port)], cwd=root, start_new_session=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/dump", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise click.ClickException("the receiver did not start")


async def _subscribe(db: Database, urls: list[str]) -> list[str]:
    from integrations import service
    from integrations.config import WebhookConfig
    from integrations.schemas import WebhookCreate
    from kernel.crypto import SecretBox

    config = WebhookConfig(allow_nets=(ipaddress.ip_network("127.0.0.0/8"),), allow_http=True)
    box = SecretBox(_KEY)
    async with db.transaction() as conn:
        made = [
            await service.create(conn, box, config, WebhookCreate("bench", "report.*", url)) for url in urls
        ]
    return [m.secret for m in made]


async def _bare_loop(urls: list[str], secrets: list[str], n: int, concurrency: int) -> float:
    """Deliveries per second of a plain httpx loop posting ``n`` signed bodies."""
    from integrations import signing
    from kernel.events import event_body

    jobs = [(urls[i % len(urls)], secrets[i % len(urls)], i) for i in range(n)]
    bodies = [event_body("report.created", {"report_id": f"bare-{i}"}).encode() for i in range(n)]
    it = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for url, secret, i in it:
            headers = signing.headers([secret], f"msg_bare_{i}", int(time.time()), bodies[i])
            r = await client.post(url, content=bodies[i], headers=headers)
            r.raise_for_status()

    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


async def _delivered(db: Database) -> int:
    n: int = await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
    return n


async def _wait_delivered(db: Database, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await _delivered(db) >= n:
            return time.perf_counter()
        # Rare polls: a count over thousands of rows every 50 ms cost PostgreSQL as much CPU as the
        # deliveries themselves (measured), and it competes with what is measured.
        await asyncio.sleep(0.5)
    raise click.ClickException(f"only {await _delivered(db)} of {n} deliveries after {timeout:.0f} s")


async def _throughput(db: Database, events: int, endpoints: int) -> float:
    from kernel.events import emit_many

    async with db.transaction() as conn:
        await emit_many(conn, [("report.created", {"report_id": f"t-{i}"}) for i in range(events)])
    started = time.perf_counter()
    finished = await _wait_delivered(db, events * endpoints, timeout=600)
    return events * endpoints / (finished - started)


async def _dump(receiver: str) -> list[Any]:
    async with httpx.AsyncClient(trust_env=False) as client:
        found: list[Any] = (await client.get(receiver + "/dump", timeout=30)).json()
    return found


async def _latency(db: Database, rate: float, endpoints: int, seconds: float, receiver: str) -> list[float]:
    """Commit-to-first-attempt delays of every delivery, with events paced to ``rate`` deliveries/s."""
    from kernel.events import emit

    already = await _delivered(db)
    await _dump(receiver)  # forget the throughput phase
    interval = endpoints / rate
    committed: dict[str, float] = {}
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        async with db.transaction() as conn:
            event_id = await emit(conn, "report.created", {"report_id": f"l-{n}"})
        committed[f"msg_{event_id}"] = time.time()
        n += 1
        await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
    await _wait_delivered(db, already + n * endpoints, timeout=120)
    arrivals = await _dump(receiver)
    return [t - committed[i] for _, i, t in arrivals if i in committed]


async def _bench(events: int, endpoints: int, seconds: float) -> dict[str, float]:
    from kernel import migrate

    url = await recreate_database(resolve_database_url(get_settings()), BENCH_DB)
    await asyncio.to_thread(migrate.upgrade, url, "heads")
    port = free_port()
    receiver = _start_receiver(port)
    db = Database(url, max_size=4)
    await db.open()
    server: ServeProcess | None = None
    try:
        urls = [f"http://127.0.0.1:{port}/h{i}" for i in range(endpoints)]
        secrets = await _subscribe(db, urls)
        n = events * endpoints
        click.echo(f"Bare httpx loop: {n:,} signed POSTs, {endpoints * _PER_ENDPOINT} in flight ...")
        cpu = own_cpu_seconds()
        bare = await _bare_loop(urls, secrets, n, endpoints * _PER_ENDPOINT)
        bare_cpu = (own_cpu_seconds() - cpu) / n
        server = ServeProcess(url, env=_ENV, scheduler=True)
        await asyncio.to_thread(server.wait_ready)
        click.echo(f"Dispatcher: {events:,} events x {endpoints} endpoints committed at once ...")
        before = cpu_seconds([server.proc.pid], BENCH_DB)
        rate = await _throughput(db, events, endpoints)
        after = cpu_seconds([server.proc.pid], BENCH_DB)
        server_cpu, pg_cpu = ((a - b) / n for a, b in zip(after, before, strict=True))
        click.echo(f"Latency: {0.8 * rate:,.0f} deliveries/s for {seconds:.0f} s, one event per commit ...")
        delays = await _latency(db, 0.8 * rate, endpoints, seconds, f"http://127.0.0.1:{port}")
    finally:
        if server is not None:
            server.stop()
        receiver.kill()
        receiver.wait(5)
        await db.close()
    return {
        "bare": bare,
        "rate": rate,
        "n": len(delays),
        "p50": _pct(delays, 0.5),
        "p99": _pct(delays, 0.99),
        "bare_cpu": bare_cpu,
        "server_cpu": server_cpu,
        "pg_cpu": pg_cpu,
    }


@click.command("webhooks")
@click.option("--events", default=2_000, show_default=True, help="Events for the throughput phase.")
@click.option("--endpoints", default=8, show_default=True, help="Endpoints each event goes to.")
@click.option("--seconds", default=20.0, show_default=True, help="Length of the latency phase.")
def bench_webhooks(events: int, endpoints: int, seconds: float) -> None:
    """Webhook deliveries/s vs a bare httpx loop, and p99 commit -> first attempt at 80 % of that rate."""
    res = asyncio.run(_bench(events, endpoints, seconds))
    click.echo("")
    click.echo(f"bare httpx loop:      {res['bare']:9,.0f} POSTs/s")
    click.echo(
        f"dispatcher:           {res['rate']:9,.0f} deliveries/s  ({res['rate'] / res['bare']:.2f} of bare; goal >= 0.8)"
    )
    click.echo(
        f"CPU per delivery: bare loop {res['bare_cpu'] * 1e6:,.0f} us; dispatcher's server process "
        f"{res['server_cpu'] * 1e6:,.0f} us + PostgreSQL {res['pg_cpu'] * 1e6:,.0f} us"
    )
    click.echo(
        f"commit -> 1st attempt at {0.8 * res['rate']:,.0f}/s: n={res['n']:,.0f}  p50 {res['p50'] * 1000:.1f} ms  "
        f"p99 {res['p99'] * 1000:.1f} ms (goal <= 1000 ms)"
    )
