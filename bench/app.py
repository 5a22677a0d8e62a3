"""``corp-astro bench app``: the web app's experiment page against the results API call alone.

One experiment with ``--units`` (1,000,000) assigned users, 50/50, 10 % and 11 % converted, and 30 days
of the aggregation job's daily counts (so the page draws its cumulative chart too). A real
``corp-astro serve`` answers both, over HTTP on 127.0.0.1:

- **API**: ``GET /v1/experiments/{name}/results`` with a Bearer token (the JSON the page is built from);
- **Page**: ``GET /app/experiments/{name}`` with the session cookie (the same results, then the views,
  the SVG charts and the Jinja template).

After ``--warmup`` calls of each, ``--runs`` calls alternate between the two (so background load on a
shared machine hits both); medians are reported, and their ratio (goal <= 1.3x, page <= 300 ms). Page
weight is the HTML plus its stylesheet and script, as sent (gzip where the server compresses) and
decoded (goal <= 300 KB). The scratch database is kept for later runs of the same size.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any

import asyncpg
import click
import httpx

from bench.kit import ServeProcess, scratch_database
from kernel.db import resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_app"]

_NAME = "bench-app"
_DB = "corp_astro_bench_app"
_EMAIL = "bench-admin@bench.invalid"
_PASSWORD = "bench passphrase for the web app 7"  # noqa: S105 (a scratch database's account)
_SECRET = "bench-app-secret-0123456789abcdef0123456789"  # noqa: S105


async def _account(url: str) -> None:
    from kernel.auth import hash_password

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO users (email, password_hash, first_name, last_name, role)
               VALUES ($1, $2, 'Bench', 'Admin', 'admin') ON CONFLICT DO NOTHING""",
            _EMAIL,
            hash_password(_PASSWORD),
        )
    finally:
        await conn.close()


def _bearer(base: str) -> dict[str, str]:
    r = httpx.post(f"{base}/v1/auth/login", json={"email": _EMAIL, "password": _PASSWORD}, timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _create(base: str) -> None:
    """The experiment, through the API."""
    body = {
        "name": _NAME,
        "start_date": "2026-01-01",
        "description": "generating",
        "variants": [{"name": "control", "traffic_percentage": 50}, {"name": "treatment", "traffic_percentage": 50}],
    }  # fmt: skip
    r = httpx.post(f"{base}/v1/experiments", json=body, headers=_bearer(base), timeout=30)
    r.raise_for_status()


async def _generate(url: str, units: int) -> None:
    """The experiment's assignments and daily counts, in SQL."""
    conn = await asyncpg.connect(url, command_timeout=3600)
    try:
        t0 = time.perf_counter()
        test_id = await conn.fetchval("SELECT test_id FROM ab_tests WHERE name = $1", _NAME)
        async with conn.transaction():
            # No users rows: the assignments' foreign key to users is not what is measured here.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, converted, phase)
                   SELECT $1, v.variant_id, md5('app' || j)::uuid,
                          (j / 2) % 100 < (CASE WHEN v.position = 0 THEN 10 ELSE 11 END), 1
                   FROM generate_series(0, $2::bigint - 1) AS j
                   JOIN ab_test_variants v ON v.test_id = $1 AND v.position = j % 2""",
                test_id,
                units,
            )
            await conn.execute(
                """INSERT INTO experiment_daily (test_id, variant_id, day, assigned, converted)
                   SELECT $1, v.variant_id, date '2026-01-01' + d, $2::bigint / 60,
                          $2::bigint / 60 / (CASE WHEN v.position = 0 THEN 10 ELSE 9 END)
                   FROM generate_series(0, 29) AS d JOIN ab_test_variants v ON v.test_id = $1""",
                test_id,
                units,
            )
        await conn.execute("VACUUM ANALYZE ab_test_assignments")
        await conn.execute("UPDATE ab_tests SET description = $2 WHERE name = $1", _NAME, str(units))
        click.echo(f"generated {units:,} assignments in {time.perf_counter() - t0:.0f} s")
    finally:
        await conn.close()


def _session(base: str) -> httpx.Client:
    """A client signed in through the web app's form (its cookies kept)."""
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/app/login")
    csrf = re.search(r'name="_csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"email": _EMAIL, "password": _PASSWORD, "_csrf": csrf.group(1), "next": "/app/experiments"}
    r = client.post("/app/login", data=data)
    if r.status_code != 303 or "ca_session" not in client.cookies:
        raise click.ClickException(f"signing in to the web app failed: {r.status_code}")
    return client


def _timed(call: Any) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = call()
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r


def _weight(client: httpx.Client, page: httpx.Response) -> tuple[int, int]:
    """(bytes on the wire, decoded bytes) of the page with its stylesheet and script."""
    wire, decoded = page.num_bytes_downloaded, len(page.content)
    for path in re.findall(r'(?:href|src)="(/app/static/[^"]+)"', page.text):
        r = client.get(path)
        wire += r.num_bytes_downloaded
        decoded += len(r.content)
    return wire, decoded


def _measure(base: str, warmup: int, runs: int) -> None:
    api = httpx.Client(base_url=base, headers=_bearer(base), timeout=60)
    app = _session(base)
    api_call = lambda: api.get(f"/v1/experiments/{_NAME}/results")  # noqa: E731
    page_call = lambda: app.get(f"/app/experiments/{_NAME}")  # noqa: E731
    for _ in range(warmup):
        _timed(api_call)
        _timed(page_call)
    api_s: list[float] = []
    page_s: list[float] = []
    page = None
    for _ in range(runs):
        api_s.append(_timed(api_call)[0])
        elapsed, page = _timed(page_call)
        page_s.append(elapsed)
    assert page is not None
    assert "svg" in page.text
    wire, decoded = _weight(app, page)
    a, p = statistics.median(api_s), statistics.median(page_s)
    click.echo(f"  results API (JSON):        median {a * 1000:.0f} ms {[round(x * 1000) for x in api_s]}")
    click.echo(f"  experiment page (HTML):    median {p * 1000:.0f} ms {[round(x * 1000) for x in page_s]}")
    click.echo(f"  ratio page / API: {p / a:.2f}x (goal <= 1.3x; page goal <= 300 ms)")
    click.echo(
        f"  page weight with its CSS and JS: {decoded / 1024:.1f} KB decoded, {wire / 1024:.1f} KB on the wire "
        "(goal <= 300 KB)"
    )
    api.close()
    app.close()


@click.command("app")
@click.option("--units", default=1_000_000, show_default=True, help="Assigned users.")
@click.option("--warmup", default=3, show_default=True, help="Unmeasured calls of each first.")
@click.option("--runs", default=15, show_default=True, help="Measured calls of each (median reported).")
@click.option("--regenerate", is_flag=True, help="Rebuild the scratch database even if present.")
def bench_app(units: int, warmup: int, runs: int, regenerate: bool) -> None:
    """The experiment page for an experiment with --units assigned against the results API alone."""
    from kernel import migrate

    server = resolve_database_url(get_settings())
    url, generate = asyncio.run(scratch_database(server, _DB, _NAME, str(units), regenerate))
    if generate:
        migrate.upgrade(url, "heads")
    asyncio.run(_account(url))
    serve = ServeProcess(url, env={"CORP_ASTRO_JWT_SECRET": _SECRET})
    try:
        serve.wait_ready()
        base = f"http://127.0.0.1:{serve.port}"
        if generate:
            _create(base)
            asyncio.run(_generate(url, units))
        click.echo(f"{units:,} assigned units, 2 variants, 30 rolled-up days; one server process, 127.0.0.1")
        _measure(base, warmup, runs)
    finally:
        serve.stop()
