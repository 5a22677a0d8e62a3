"""``corp-astro bench assign``: the assignment hot path against its floor, in one run.

- **HTTP**: K clients, each on its own keep-alive connection to a real ``corp-astro serve`` process,
  POST first-time assignments for users that have none (write-key auth, the apps' path).
- **Baseline**: the same K clients doing only the bare ``INSERT ... ON CONFLICT DO NOTHING`` round trip
  through asyncpg, one connection each: the least any assignment can cost.
- **Anonymous ids** (issue 15): the same two paths for an experiment whose unit is ``anonymous``:
  ``{"anonymous_id": ...}`` over HTTP, against the bare ``INSERT ... ON CONFLICT`` into
  ``experiment_unit_assignments``; the anonymous HTTP rate is also compared with the users' bare INSERT.
- **Results**: ``GET /v1/experiments/{name}/results`` for an experiment with N (1,000,000) assignments.

Each K (32 and 64 by default) gets its own users and rounds; the best HTTP rate over the Ks is compared
with the best baseline rate, the way ingest compares its best raw COPY. Everything happens in a scratch
database on the configured server, dropped at the end. Rounds alternate (baseline, HTTP, anonymous
baseline, anonymous HTTP, and again) so that background load on a shared machine hits every path.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import json
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import click

from bench import load
from bench.kit import ServeProcess, cpu_seconds, own_cpu_seconds
from bench.load import HttpClient
from kernel.db import drop_database, recreate_database

__all__ = ["run"]

_SCRATCH_DB = "corp_astro_bench_assign"
_SERVER_POOL = 16


@dataclass
class Phase:
    """Throughput and latency of one measured phase."""

    label: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    # CPU seconds used during the phase: server process(es), PostgreSQL backends, load generator.
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000.0


@dataclass
class _Users:
    """New users for one K: warm-up, then one list per round for each path; the same for anonymous ids."""

    warm: list[uuid.UUID]
    http: list[list[uuid.UUID]]
    base: list[list[uuid.UUID]]
    anon_warm: list[str]
    anon_http: list[list[str]]
    anon_base: list[list[str]]


def _anonymous_ids(n: int) -> list[str]:
    """New anonymous ids as analytics.js makes them (a UUID string)."""
    return [str(uuid.uuid4()) for _ in range(n)]


@dataclass
class _Summary:
    """One K's rounds pooled: rates over all requests, p99 over all latencies, CPU per request."""

    phases: list[tuple[Phase, Phase]]
    base_rate: float
    http_rate: float
    base_p99: float
    http_p99: float

    @classmethod
    def of(cls, phases: list[tuple[Phase, Phase]]) -> _Summary:
        """``phases``: (baseline, HTTP) per round."""

        def pooled(sel: int) -> Phase:
            ps = [pair[sel] for pair in phases]
            return Phase(
                "",
                sum(p.requests for p in ps),
                sum(p.seconds for p in ps),
                [x for p in ps for x in p.latencies],
                0,
            )

        base, http = pooled(0), pooled(1)
        return cls(phases, base.rate, http.rate, base.pct(0.99), http.pct(0.99))

    def cpu_text(self, sel: int) -> str:
        ps = [pair[sel] for pair in self.phases]
        n = sum(p.requests for p in ps)
        parts = []
        for name, i in (("server", 0), ("PostgreSQL", 1), ("load generator", 2)):
            parts.append(f"{name} {sum(p.cpu[i] for p in ps) / n * 1e6:,.0f}")
        return ", ".join(parts)


async def _new_users(conn: asyncpg.Connection, n: int, tag: str) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """INSERT INTO users (user_id, email, password_hash, first_name, last_name)
           SELECT gen_random_uuid(), $2 || g || '@bench.invalid', 'x', 'Bench', 'User'
           FROM generate_series(1, $1) AS g RETURNING user_id""",
        n,
        tag,
    )
    return [r["user_id"] for r in rows]


async def _create_experiment(
    conn: asyncpg.Connection, admin_id: uuid.UUID, name: str, unit: str = "user"
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    from experiments import service
    from experiments.schemas import ExperimentCreate, VariantIn
    from kernel.auth import AuthUser

    exp = await service.create_experiment(
        conn,
        ExperimentCreate(
            name=name,
            start_date=dt.date(2020, 1, 1),
            variants=[VariantIn("control", decimal.Decimal(50)), VariantIn("treatment", decimal.Decimal(50))],
            unit=unit,  # type: ignore[arg-type]
        ),
        AuthUser(admin_id, "admin", "bench@bench.invalid"),
    )
    return exp.test_id, [v.variant_id for v in exp.variants]


def _report_anonymous(summary: dict[int, _Summary], user_base_rate: float) -> None:
    """The anonymous-id figures: per K, then best against best (and against the users' bare INSERT)."""
    click.echo("")
    for k, sm in summary.items():
        click.echo(
            f"anonymous K={k}: HTTP {sm.http_rate:,.0f}/s (p99 {sm.http_p99:.2f} ms), bare INSERT into "
            f"experiment_unit_assignments {sm.base_rate:,.0f}/s (p99 {sm.base_p99:.2f} ms): ratio "
            f"{sm.http_rate / sm.base_rate:.2f}; CPU per request, us: baseline {sm.cpu_text(0)}; "
            f"HTTP {sm.cpu_text(1)}"
        )
    best_http = max(summary.items(), key=lambda kv: kv[1].http_rate)
    best_base = max(summary.items(), key=lambda kv: kv[1].base_rate)
    ratio = best_http[1].http_rate / best_base[1].base_rate
    click.echo(
        f"\nfirst-time anonymous-id assignments over HTTP, best K ({best_http[0]}): "
        f"{best_http[1].http_rate:,.0f}/s (p99 {best_http[1].http_p99:.2f} ms); bare asyncpg INSERT ... ON "
        f"CONFLICT into experiment_unit_assignments, best K ({best_base[0]}): {best_base[1].base_rate:,.0f}/s"
    )
    click.echo(
        f"ratio best anonymous HTTP / best anonymous baseline = {ratio:.2f} "
        f"(goal >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'}); against the users' bare INSERT "
        f"({user_base_rate:,.0f}/s): {best_http[1].http_rate / user_base_rate:.2f}"
    )


def _cpu(server_pid: int) -> tuple[float, float, float]:
    server, backends = cpu_seconds([server_pid], _SCRATCH_DB)
    return server, backends, own_cpu_seconds()


async def _run_clients(k: int, users: Iterator[Any], one: object, label: str, server_pid: int) -> Phase:
    """K concurrent workers draining ``users``; ``one(worker, user)`` does one timed request."""
    latencies: list[float] = []
    errors = 0

    def done(ok: bool, seconds: float) -> None:
        nonlocal errors
        latencies.append(seconds)
        errors += not ok

    cpu0 = _cpu(server_pid)
    elapsed = await load.closed_loop(k, users, one, done)  # type: ignore[arg-type]
    cpu = tuple(b - a for a, b in zip(cpu0, _cpu(server_pid), strict=True))
    return Phase(label, len(latencies), elapsed, latencies, errors, cpu)  # type: ignore[arg-type]


async def run(
    ks: tuple[int, ...], n_users: int, n_results: int, workers: int, keep: bool, rounds: int = 3
) -> int:
    """The whole benchmark; prints its figures and returns the process exit code."""
    from kernel import migrate
    from kernel.auth import create_access_token, generate_write_key, hash_write_key
    from kernel.db import Database, resolve_database_url, uuid7
    from kernel.settings import Settings, get_settings

    base_url = resolve_database_url(get_settings())
    url = await recreate_database(base_url, _SCRATCH_DB)
    click.echo(
        f"scratch database {_SCRATCH_DB}; K = {', '.join(map(str, ks))} clients, {rounds} rounds of "
        f"{n_users:,} new users per path and K, {workers} worker(s)"
    )
    await asyncio.to_thread(migrate.upgrade, url, "heads")
    server: ServeProcess | None = None
    try:
        # The app's own pool setup (JSON codecs, UTC) for the rows the service writes.
        setup_db = Database(url, max_size=1)
        await setup_db.open()
        try:
            async with setup_db.transaction() as conn:
                admin_id = (await _new_users(conn, 1, "admin"))[0]
                await conn.execute("UPDATE users SET role = 'admin' WHERE user_id = $1", admin_id)
                key = generate_write_key()
                await conn.execute(
                    "INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ('bench', $1, $2)",
                    hash_write_key(key),
                    key[:12],
                )
                await _create_experiment(conn, admin_id, "bench-http")
                base_test, base_variants = await _create_experiment(conn, admin_id, "bench-baseline")
                await _create_experiment(conn, admin_id, "bench-anon", "anonymous")
                anon_test, anon_variants = await _create_experiment(
                    conn, admin_id, "bench-anon-baseline", "anonymous"
                )
                users = {
                    k: _Users(
                        await _new_users(conn, 2 * max(10_000, k * 100), f"w{k}-"),
                        [await _new_users(conn, n_users, f"h{k}-{r}-") for r in range(rounds)],
                        [await _new_users(conn, n_users, f"b{k}-{r}-") for r in range(rounds)],
                        _anonymous_ids(2 * max(10_000, k * 100)),
                        [_anonymous_ids(n_users) for _ in range(rounds)],
                        [_anonymous_ids(n_users) for _ in range(rounds)],
                    )
                    for k in ks
                }
            # A bulk-loaded table as production never has it: set hint bits and statistics now, so that
            # neither path pays for them. Autovacuum is off on the tables the rounds touch and each
            # phase starts after an explicit VACUUM instead: otherwise it wakes up mid-phase (the tables
            # grow by 20k rows a phase) and whichever path it overlaps looks up to 2x slower (measured).
            async with setup_db.pool.acquire() as conn:
                for table in ("users", "ab_test_assignments", "experiment_unit_assignments"):
                    await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
                await conn.execute("VACUUM (ANALYZE) users")
        finally:
            await setup_db.close()

        secret = secrets.token_urlsafe(32)
        # Group commit needs a few connections, not one per client; the baseline holds K of its own and
        # PostgreSQL's default max_connections is 100.
        server = ServeProcess(
            url,
            {"CORP_ASTRO_JWT_SECRET": secret, "CORP_ASTRO_DB_POOL_MAX": str(min(max(ks), _SERVER_POOL))},
            workers,
        )
        await asyncio.to_thread(server.wait_ready)
        pid = server.proc.pid
        port = server.port

        auth = {
            "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
            "Content-Type": "application/json",
        }
        insert = """INSERT INTO ab_test_assignments (assignment_id, test_id, variant_id, user_id, phase)
                    VALUES ($1, $2, $3, $4, 1) ON CONFLICT (test_id, user_id) DO NOTHING"""
        insert_anon = """INSERT INTO experiment_unit_assignments
                             (assignment_id, test_id, variant_id, unit_type, unit_id, phase)
                         VALUES ($1, $2, $3, 'anonymous', $4, 1) ON CONFLICT (test_id, unit_id) DO NOTHING"""

        async def measure(k: int, u: _Users) -> list[tuple[Phase, Phase, Phase, Phase]]:
            clients = [await HttpClient.open(port) for _ in range(k)]
            pgs = [await asyncpg.connect(url, server_settings={"timezone": "UTC"}) for _ in range(k)]

            async def run_phase(users: list[Any], one: object, label: str, table: str) -> Phase:
                await pgs[0].execute(f"VACUUM (ANALYZE) {table}")
                return await _run_clients(k, iter(users), one, label, pid)

            async def fresh_clients() -> None:
                # Fresh keep-alive connections: the server closes those left idle during a baseline.
                for c in clients:
                    c.close()
                clients[:] = [await HttpClient.open(port) for _ in range(k)]

            async def http_one(i: int, user: uuid.UUID) -> bool:
                status, body = await clients[i].request(
                    "POST",
                    "/v1/experiments/bench-http/assignments",
                    auth,
                    b'{"user_id":"%s"}' % str(user).encode(),
                )
                return status == 200 and b'"new":true' in body

            async def base_one(i: int, user: uuid.UUID) -> bool:
                await pgs[i].execute(insert, uuid7(), base_test, base_variants[user.int & 1], user)
                return True

            async def http_anon(i: int, anon: str) -> bool:
                status, body = await clients[i].request(
                    "POST",
                    "/v1/experiments/bench-anon/assignments",
                    auth,
                    b'{"anonymous_id":"%s"}' % anon.encode(),
                )
                return status == 200 and b'"new":true' in body

            async def base_anon(i: int, anon: str) -> bool:
                await pgs[i].execute(insert_anon, uuid7(), anon_test, anon_variants[ord(anon[0]) & 1], anon)
                return True

            # Warm-up (measured: the server needs about a second of load before it reaches its pace):
            # connections, prepared statements, the definition and write-key caches.
            half = len(u.warm) // 2
            await _run_clients(k, iter(u.warm[:half]), http_one, "warm-up", pid)
            await _run_clients(k, iter(u.warm[half:]), base_one, "warm-up", pid)
            half = len(u.anon_warm) // 2
            await _run_clients(k, iter(u.anon_warm[:half]), http_anon, "warm-up", pid)
            await _run_clients(k, iter(u.anon_warm[half:]), base_anon, "warm-up", pid)
            phases: list[tuple[Phase, Phase, Phase, Phase]] = []
            for r in range(rounds):
                base = await run_phase(u.base[r], base_one, f"K={k} baseline {r + 1}", "ab_test_assignments")
                await fresh_clients()
                http = await run_phase(u.http[r], http_one, f"K={k} HTTP {r + 1}", "ab_test_assignments")
                anon_base = await run_phase(
                    u.anon_base[r], base_anon, f"K={k} anon base {r + 1}", "experiment_unit_assignments"
                )
                await fresh_clients()
                anon_http = await run_phase(
                    u.anon_http[r], http_anon, f"K={k} anon HTTP {r + 1}", "experiment_unit_assignments"
                )
                phases.append((base, http, anon_base, anon_http))
            for c in clients:
                c.close()
            for pg in pgs:
                await pg.close()
            return phases

        by_k = {k: await measure(k, users[k]) for k in ks}
        anon_by_k = {k: [(p[2], p[3]) for p in phases] for k, phases in by_k.items()}

        click.echo("")
        click.echo(f"{'phase':<20}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for phases in by_k.values():
            for pair in phases:
                for p in pair:
                    click.echo(
                        f"{p.label:<20}{p.requests:>10,}{p.rate:>10,.0f}{p.pct(0.5):>9.2f}"
                        f"{p.pct(0.99):>9.2f}{p.errors:>8}"
                    )
        click.echo("")
        summary = {k: _Summary.of([(p[0], p[1]) for p in phases]) for k, phases in by_k.items()}
        for k, sm in summary.items():
            click.echo(
                f"K={k}: HTTP {sm.http_rate:,.0f}/s (p99 {sm.http_p99:.2f} ms), baseline {sm.base_rate:,.0f}/s "
                f"(p99 {sm.base_p99:.2f} ms): ratio {sm.http_rate / sm.base_rate:.2f}; CPU per request, us: "
                f"baseline {sm.cpu_text(0)}; HTTP {sm.cpu_text(1)}"
            )
        best_http = max(summary.items(), key=lambda kv: kv[1].http_rate)
        best_base = max(summary.items(), key=lambda kv: kv[1].base_rate)
        ratio = best_http[1].http_rate / best_base[1].base_rate
        errors = sum(p.errors for phases in by_k.values() for pair in phases for p in pair)
        click.echo(
            f"\nfirst-time assignments over HTTP, best K ({best_http[0]}): {best_http[1].http_rate:,.0f}/s "
            f"(p99 {best_http[1].http_p99:.2f} ms); bare asyncpg INSERT ... ON CONFLICT, best K ({best_base[0]}): "
            f"{best_base[1].base_rate:,.0f}/s (p99 {best_base[1].base_p99:.2f} ms)"
        )
        click.echo(
            f"ratio best HTTP / best baseline = {ratio:.2f} (goal >= 0.70: {'met' if ratio >= 0.7 else 'NOT met'})"
        )
        _report_anonymous({k: _Summary.of(p) for k, p in anon_by_k.items()}, best_base[1].base_rate)

        # --- results over N assignments --------------------------------------------------------------
        setup_db = Database(url, max_size=1)
        await setup_db.open()
        async with setup_db.transaction() as conn:
            res_test, res_variants = await _create_experiment(conn, admin_id, "bench-results")
        await setup_db.close()
        conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
        try:
            t0 = time.perf_counter()
            await conn.execute(
                """INSERT INTO users (user_id, email, password_hash, first_name, last_name)
                   SELECT gen_random_uuid(), 'r' || g || '@bench.invalid', 'x', 'Bench', 'User'
                   FROM generate_series(1, $1) AS g""",
                n_results,
            )
            # Control converts at 10%, treatment at 10.5%; the split is 50/50 at random.
            await conn.execute(
                """INSERT INTO ab_test_assignments (test_id, variant_id, user_id, phase, converted, converted_at)
                   SELECT $1, CASE WHEN x.t THEN $3::uuid ELSE $2::uuid END, x.user_id, 1,
                          random() < CASE WHEN x.t THEN 0.105 ELSE 0.10 END, NULL
                   FROM (SELECT user_id, random() < 0.5 AS t FROM users WHERE email LIKE 'r%@bench.invalid') x""",
                res_test,
                res_variants[0],
                res_variants[1],
            )
            await conn.execute("VACUUM ANALYZE ab_test_assignments")
            click.echo(
                f"\nloaded {n_results:,} assignments for bench-results in {time.perf_counter() - t0:.1f} s"
            )
            sql_times = []
            for _ in range(5):
                t0 = time.perf_counter()
                await conn.fetch(
                    """SELECT variant_id, phase, count(*), count(*) FILTER (WHERE converted)
                       FROM ab_test_assignments WHERE test_id = $1 GROUP BY variant_id, phase""",
                    res_test,
                )
                sql_times.append(time.perf_counter() - t0)
        finally:
            await conn.close()

        token, _ = create_access_token(
            Settings(database_url=url, data_dir=get_settings().data_dir, jwt_secret_override=secret),
            admin_id,
            "admin",
        )
        api = await HttpClient.open(server.port)
        times = []
        body = b""
        for _ in range(6):
            t0 = time.perf_counter()
            status, body = await api.request(
                "GET", "/v1/experiments/bench-results/results", {"Authorization": f"Bearer {token}"}
            )
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise click.ClickException(f"results answered {status}: {body[:200]!r}")
        api.close()
        times = times[1:]  # the first call also loads the definition and prepares statements
        users_seen = sum(v["users"] for v in json.loads(body)["variants"])
        med = statistics.median(times)
        click.echo(
            f"results endpoint over {users_seen:,} assignments: median {med * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
            f"(of 5; the GROUP BY alone: median {statistics.median(sql_times) * 1000:.0f} ms) "
            f"(goal < 1 s: {'met' if max(times) < 1 else 'NOT met'})"
        )
        return 1 if errors else 0
    finally:
        if server is not None:
            server.stop(15)
        if keep:
            click.echo(f"kept database {_SCRATCH_DB}")
        else:
            await drop_database(base_url, _SCRATCH_DB)


@click.command("assign")
@click.option(
    "--clients",
    "-k",
    multiple=True,
    type=int,
    default=(32, 64),
    show_default=True,
    help="Concurrent clients (K); repeat to measure several K (best against best is compared).",
)
@click.option("--users", default=20_000, show_default=True, help="New users per measured phase.")
@click.option("--results-assignments", default=1_000_000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Server worker processes.")
@click.option("--rounds", default=3, show_default=True, help="Alternating baseline/HTTP rounds.")
@click.option("--keep", is_flag=True, help="Keep the scratch database afterwards.")
def bench_assign(
    clients: tuple[int, ...],
    users: int,
    results_assignments: int,
    workers: int,
    rounds: int,
    keep: bool,
) -> None:
    """First-time assignments/s and p99 over HTTP vs a bare asyncpg INSERT ... ON CONFLICT."""
    import uvloop

    # uvloop in the load generator too: its CPU comes out of the same two cores as the server's.
    sys.exit(uvloop.run(run(clients, users, results_assignments, workers, keep, rounds)))
