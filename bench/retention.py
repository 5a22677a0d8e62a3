"""``corp-astro bench retention``: dropping a month of raw rows vs DELETE of the same rows, and ingest
latency under load while each happens. Everything is measured in one run on one machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import click
import httpx

from bench.kit import ServeProcess
from kernel.auth import generate_write_key, hash_write_key
from kernel.db import Database, recreate_database, resolve_database_url
from kernel.settings import get_settings
from retention import jobs
from retention import repository as repo
from retention.schemas import RetentionPolicy

__all__ = ["bench_retention"]

BENCH_DB = "corp_astro_bench_retention"


async def _fill_month(db: Database, month: dt.date, rows: int, props: int) -> None:
    """``rows`` events spread over ``month``, each with ``props`` properties, generated in SQL."""
    async with db.transaction() as conn:
        await repo.ensure_month(conn, month, lock_timeout_ms=10_000)
    part = repo.partition_name(repo.EVENT_PARENT, month)
    start = dt.datetime.combine(month, dt.time())
    async with db.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO analytics_events (event_id, event_name, event_category, device_id, session_id,
                                             "timestamp", anonymous_id)
               SELECT gen_random_uuid(), 'event_' || (g % 25), 'track', 'device-' || (g % 50000),
                      'session-' || (g % 200000), $1::timestamp + make_interval(secs => g * (2419200.0 / $2::int)),
                      'anon-' || (g % 100000)
               FROM generate_series(0, $2::int - 1) g""",
            start,
            rows,
        )
        await conn.execute(
            f"""INSERT INTO event_properties (property_id, event_id, property_name, property_value, "timestamp")
                SELECT gen_random_uuid(), e.event_id, 'prop_' || k, 'value-' || k, e."timestamp"
                FROM {part} e CROSS JOIN generate_series(1, $1) k""",
            props,
        )
        await conn.execute("VACUUM ANALYZE analytics_events, event_properties")


async def _delete_month(db: Database, month: dt.date) -> float:
    start = dt.datetime.combine(month, dt.time())
    end = dt.datetime.combine(repo._next_month(month), dt.time())
    t0 = time.perf_counter()
    async with db.transaction() as conn:
        await conn.execute(
            'DELETE FROM event_properties WHERE "timestamp" >= $1 AND "timestamp" < $2', start, end
        )
        await conn.execute(
            'DELETE FROM analytics_events WHERE "timestamp" >= $1 AND "timestamp" < $2', start, end
        )
    return time.perf_counter() - t0


async def _vacuum_month(db: Database, month: dt.date) -> float:
    """The VACUUM a DELETE needs before its space can be reused (a DROP needs none)."""
    t0 = time.perf_counter()
    async with db.pool.acquire() as conn:
        for parent in repo.PARENTS:
            await conn.execute(f"VACUUM {repo.partition_name(parent, month)}")
    return time.perf_counter() - t0


async def _drop_month(db: Database, month: dt.date) -> float:
    parts = {
        p.parent: p
        for parent in repo.PARENTS
        for p in await repo.list_partitions(db.pool, parent)
        if p.start == month
    }
    t0 = time.perf_counter()
    for parent in repo.PARENTS:
        await jobs.detach_and_drop(db, RetentionPolicy(), parts[parent])
    return time.perf_counter() - t0


def _batch(now: dt.datetime, n: int = 100) -> dict[str, Any]:
    ts = now.isoformat().replace("+00:00", "Z")
    return {
        "batch": [
            {
                "type": "track",
                "event": "bench_event",
                "messageId": uuid.uuid4().hex,
                "anonymousId": f"anon-{i % 500}",
                "timestamp": ts,
                "properties": {f"p{k}": k for k in range(5)},
            }
            for i in range(n)
        ],
        "sentAt": ts,
    }


async def _load(
    base_url: str,
    key: str,
    stop: asyncio.Event,
    out: list[tuple[float, float, int]],
    clients: int,
    pause: float,
) -> None:
    """``clients`` keep-alive clients posting 100-event batches; records (start, latency, status)."""

    async def one(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            body = _batch(dt.datetime.now(dt.UTC))
            t0 = time.perf_counter()
            r = await client.post("/v1/batch", json=body, auth=(key, ""))
            out.append((t0, time.perf_counter() - t0, r.status_code))
            await asyncio.sleep(pause)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await asyncio.gather(*(one(client) for _ in range(clients)))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _under_load(
    db: Database, url: str, months: tuple[dt.date, dt.date], clients: int
) -> dict[str, Any]:
    """Ingest latency while idle of maintenance, while a month is dropped, while a month is DELETEd."""
    key = generate_write_key()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ('bench', $1, $2)",
            hash_write_key(key),
            key[:12],
        )
    server = ServeProcess(url)
    base = f"http://127.0.0.1:{server.port}"
    try:
        await asyncio.to_thread(server.wait_ready, 30.0)
        samples: list[tuple[float, float, int]] = []
        stop = asyncio.Event()
        load = asyncio.create_task(_load(base, key, stop, samples, clients, 0.01))
        await asyncio.sleep(3)  # warm up
        t_base = time.perf_counter()
        await asyncio.sleep(4)
        t_drop0 = time.perf_counter()
        drop_s = await _drop_month(db, months[0])
        t_drop1 = time.perf_counter()
        await asyncio.sleep(2)
        t_del0 = time.perf_counter()
        delete_s = await _delete_month(db, months[1])
        t_del1 = time.perf_counter()
        await asyncio.sleep(1)
        stop.set()
        await load

        def window(a: float, b: float) -> list[float]:
            return [lat for t0, lat, _ in samples if a <= t0 + lat and t0 <= b]

        base_lat = window(t_base, t_drop0 - 0.05)
        drop_lat = window(t_drop0 - 0.25, t_drop1 + 0.25)
        del_lat = window(t_del0, t_del1)
        return {
            "drop_s": drop_s,
            "delete_s": delete_s,
            "requests": len(samples),
            "errors": sum(1 for *_, s in samples if s != 200),
            "base": base_lat,
            "drop": drop_lat,
            "delete": del_lat,
        }
    finally:
        await asyncio.to_thread(server.stop)


async def _bench(rows: int, props: int, clients: int, with_load: bool) -> None:
    base = resolve_database_url(get_settings())
    url = await recreate_database(base, BENCH_DB)
    from kernel import migrate

    await asyncio.to_thread(migrate.upgrade, url, "heads")
    # Bulk fills and DELETEs of millions of rows outlast the pool's default 60 s statement timeout.
    db = Database(url, max_size=4, command_timeout=None)
    await db.open()
    try:
        months = [dt.date(2020, m, 1) for m in (1, 2, 3, 4)]
        click.echo(f"Filling 4 months with {rows:,} events and {rows * props:,} properties each ...")
        for m in months:
            await _fill_month(db, m, rows, props)
        total = rows * (1 + props)
        delete_s = await _delete_month(db, months[0])
        vacuum_s = await _vacuum_month(db, months[0])
        drop_s = await _drop_month(db, months[1])
        click.echo("\nIdle database, one month of raw data each:")
        click.echo(
            f"  DELETE of {total:,} rows (events + properties): {delete_s:8.3f} s, then VACUUM {vacuum_s:.3f} s"
        )
        click.echo(f"  detach + DROP of the same month's partitions:   {drop_s:8.3f} s")
        click.echo(
            f"  ratio DROP/DELETE: {drop_s / delete_s:.4f} (DROP {delete_s / drop_s:,.1f}x faster; "
            f"{(delete_s + vacuum_s) / drop_s:,.1f}x with the VACUUM a DELETE leaves behind)"
        )
        if not with_load:
            return
        click.echo(f"\nUnder ingest load ({clients} keep-alive clients posting 100-event batches):")
        res = await _under_load(db, url, (months[2], months[3]), clients)
        click.echo(f"  requests {res['requests']:,}, non-200 answers {res['errors']}")
        for label, key in (("no maintenance", "base"), ("during DROP", "drop"), ("during DELETE", "delete")):
            lat = res[key]
            click.echo(
                f"  ingest ack latency {label:<15} n={len(lat):5d}  p50 {_pct(lat, 0.5) * 1000:7.1f} ms  "
                f"p99 {_pct(lat, 0.99) * 1000:7.1f} ms  max {max(lat, default=float('nan')) * 1000:7.1f} ms"
            )
        click.echo(f"  DROP took {res['drop_s']:.3f} s and DELETE {res['delete_s']:.3f} s under load")
        if res["base"] and res["drop"]:
            click.echo(
                f"  p99 during DROP / p99 without maintenance: {_pct(res['drop'], 0.99) / _pct(res['base'], 0.99):.2f}"
            )
    finally:
        await db.close()


@click.command("retention")
@click.option("--rows", default=1_000_000, show_default=True, help="Events per month (N).")
@click.option("--props", default=2, show_default=True, help="Properties per event.")
@click.option("--clients", default=4, show_default=True, help="Concurrent ingest clients for the load phase.")
@click.option("--no-load", is_flag=True, help="Skip the ingest-under-load phase.")
def bench_retention(rows: int, props: int, clients: int, no_load: bool) -> None:
    """Dropping a month of N raw rows vs DELETE of the same rows, and ingest latency during each."""
    asyncio.run(_bench(rows, props, clients, not no_load))
