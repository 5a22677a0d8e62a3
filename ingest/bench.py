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
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import click
import orjson

from core_api.db import resolve_database_url
from core_api.settings import get_settings

__all__ = ["bench_ingest"]

BENCH_DB = "corp_astro_bench_ingest"
ROOT = Path(__file__).resolve().parent.parent
PROPS = 5
EVENTS_PER_BATCH = 100


def _db_url(url: str, name: str) -> str:
    head, _, tail = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{tail}" if tail else "")


async def _recreate(url: str) -> str:
    conn = await asyncpg.connect(_db_url(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await conn.close()
    return _db_url(url, BENCH_DB)


# --- Synthetic traffic ----------------------------------------------------------------------------


class BodyFactory:
    """Segment batch bodies with unique messageIds, built by splicing ids into a pre-encoded template."""

    def __init__(self, users: list[str], write_key: str) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ts = now.isoformat(timespec="milliseconds") + "Z"
        self._parts: list[bytes] = []
        head = b'{"sentAt":"' + ts.encode() + b'","batch":['
        pieces: list[bytes] = []
        for i in range(EVENTS_PER_BATCH):
            user = users[i % len(users)] if i % 2 == 0 else f"ext-{i}"
            msg = {
                "type": "track",
                "event": f"event_{i % 10}",
                "userId": user,
                "anonymousId": f"anon-{i}",
                "timestamp": ts,
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
                "properties": {
                    "category": "bench",
                    "plan": "pro",
                    "amount": i * 1.5,
                    "sign": "leo",
                    "tags": ["a", "b"],
                },
                "messageId": "@@",
            }
            assert len(msg["properties"]) == PROPS
            pieces.append(orjson.dumps(msg))
        body = head + b",".join(pieces) + b"]}"
        self._parts = body.split(b"@@")
        self._counter = 0
        self.auth = b"Basic " + base64.b64encode(write_key.encode() + b":")

    def next(self) -> bytes:
        """A new body: every messageId is unique across the run."""
        self._counter += 1
        prefix = f"{os.getpid()}-{self._counter}-".encode()
        out = [self._parts[0]]
        for i, part in enumerate(self._parts[1:]):
            out.append(prefix + str(i).encode())
            out.append(part)
        return b"".join(out)


# --- (a) raw COPY ---------------------------------------------------------------------------------


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE analytics_events, event_properties, ingest_message_ids")
        await conn.execute("ANALYZE users")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _raw_copy(
    url: str,
    chunks: list[tuple[list[Any], list[Any]]],
    connections: int,
    *,
    ledger: bool = False,
    truncate: bool = True,
) -> float:
    """Events/s of binary COPY of ``chunks`` (one transaction each) over ``connections`` connections.

    ``ledger`` also COPYs each event id into ``ingest_message_ids``, as the server's flush does.
    """
    from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS

    if truncate:
        await _truncate(url)
    conns = [await asyncpg.connect(url, server_settings={"timezone": "UTC"}) for _ in range(connections)]
    queue = list(chunks)
    events = sum(len(e) for e, _ in chunks)

    async def work(conn: asyncpg.Connection) -> None:
        while queue:
            ev, pr = queue.pop()
            async with conn.transaction():
                if ledger:
                    ids = sorted((row[0],) for row in ev)
                    await conn.copy_records_to_table("ingest_message_ids", records=ids, columns=("event_id",))
                await conn.copy_records_to_table("analytics_events", records=ev, columns=EVENT_COLUMNS)
                await conn.copy_records_to_table("event_properties", records=pr, columns=PROPERTY_COLUMNS)

    started = time.perf_counter()
    await asyncio.gather(*(work(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        await c.close()
    return events / elapsed


_FK_PROPERTIES = """ALTER TABLE event_properties ADD CONSTRAINT bench_fk_event FOREIGN KEY (event_id, "timestamp")
       REFERENCES analytics_events (event_id, "timestamp") ON DELETE CASCADE"""
_FK_USERS = "fk_analytics_events_user_id_users"


async def _fk_costs(url: str, sets: list[list[tuple[list[Any], list[Any]]]], rounds: int) -> dict[str, float]:
    """Single-connection COPY rates of fresh rows under three FK configurations: the median of
    ``rounds`` interleaved runs each (the machine is shared, so single runs are noisy).

    Measured on tables already holding rows and ANALYZEd, each in a fresh session: on empty tables the
    FK checks' cached plans are seq scans, which exaggerates their cost many times over.
    """
    conn = await asyncpg.connect(url)
    runs: dict[str, list[float]] = {}
    try:
        await _raw_copy(url, sets[0], 1)
        await conn.execute("ANALYZE analytics_events; ANALYZE event_properties; ANALYZE users")
        add_users_fk = f"""ALTER TABLE analytics_events ADD CONSTRAINT {_FK_USERS} FOREIGN KEY (user_id)
                           REFERENCES users (user_id) ON DELETE SET NULL"""
        configs: tuple[tuple[str, list[str], list[str]], ...] = (
            ("schema_users_fk_only", [], []),
            (
                "seed_both_fks",
                [_FK_PROPERTIES],
                ["ALTER TABLE event_properties DROP CONSTRAINT bench_fk_event"],
            ),
            ("no_fks", [f"ALTER TABLE analytics_events DROP CONSTRAINT {_FK_USERS}"], [add_users_fk]),
        )
        remaining = iter(sets[1:])
        for _ in range(rounds):
            for label, before, after in configs:
                for sql in before:
                    await conn.execute(sql)
                runs.setdefault(label, []).append(await _raw_copy(url, next(remaining), 1, truncate=False))
                for sql in after:
                    await conn.execute(sql)
        return {label: statistics.median(values) for label, values in runs.items()}
    finally:
        await conn.close()


def _prebuilt_rows(
    factory: BodyFactory, source_id: uuid.UUID, users: set[str], batches: int, per_txn: int
) -> list[tuple[list[Any], list[Any]]]:
    """Rows exactly as the server would write them, grouped ``per_txn`` events per transaction."""
    import msgspec

    from ingest.mapping import USER_ID_SLOT, RequestInfo, map_events
    from ingest.schemas import BatchEnvelope

    info = RequestInfo(source_id, dt.datetime.now(dt.UTC).replace(tzinfo=None), "127.0.0.1", "bench")
    chunks: list[tuple[list[Any], list[Any]]] = []
    ev: list[Any] = []
    pr: list[Any] = []
    for _ in range(batches):
        env = msgspec.json.decode(factory.next(), type=BatchEnvelope)
        batch = map_events(env.batch, info, sent_at=env.sentAt)
        for row, props in zip(batch.events, batch.properties, strict=True):
            user = row[USER_ID_SLOT]
            if user is not None and str(user) not in users:
                row = (row[0], None, *row[2:])
            ev.append(row)
            pr.extend(props)
        if len(ev) >= per_txn:
            chunks.append((ev, pr))
            ev, pr = [], []
    if ev:
        chunks.append((ev, pr))
    return chunks


# --- (b) HTTP load --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``corp-astro serve`` in its own process group on 127.0.0.1; RSS sampled in a thread."""

    def __init__(self, url: str, env: dict[str, str], workers: int = 1) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "core_api.cli", "serve", "--no-migrate", "--no-scheduler"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        full_env = {**os.environ, "DATABASE_URL": url, "CORP_ASTRO_LOG_LEVEL": "WARNING", **env}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, start_new_session=True)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise click.ClickException(f"server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    self._thread.start()
                    return
            time.sleep(0.2)
        raise click.ClickException("server did not start")

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process(self.proc.pid)
        while not self._stop.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                return
            self.samples.append((time.monotonic(), rss))
            time.sleep(0.1)

    def rss_between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class PhaseResult:
    seconds: float
    ok: int = 0
    unavailable: int = 0
    other: int = 0
    events_ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def events_per_s(self) -> float:
        return self.events_ok / self.seconds


class Client:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the benchmark."""

    def __init__(self, port: int, auth: bytes) -> None:
        self.port = port
        self.head = (
            b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: " + auth + b"\r\nContent-Length: "
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


async def _closed_loop(port: int, factory: BodyFactory, clients: int, seconds: float) -> PhaseResult:
    result = PhaseResult(seconds)
    deadline = time.perf_counter() + seconds

    async def run(c: Client) -> None:
        while time.perf_counter() < deadline:
            body = factory.next()
            t0 = time.perf_counter()
            status = await c.post(body)
            _count(result, status, (time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(run(Client(port, factory.auth)) for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


def _count(result: PhaseResult, status: int, ms: float) -> None:
    if status == 200:
        result.ok += 1
        result.events_ok += EVENTS_PER_BATCH
        result.latencies_ms.append(ms)
    elif status == 503:
        result.unavailable += 1
    else:
        result.other += 1


async def _open_loop(port: int, factory: BodyFactory, rate: float, seconds: float) -> PhaseResult:
    """Requests scheduled at ``rate``/s regardless of responses, each on an idle keep-alive connection
    or a new one (as many independent SDK clients would). Latency counts from the scheduled time."""
    result = PhaseResult(seconds)
    idle: list[Client] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        c = idle.pop() if idle else Client(port, factory.auth)
        try:
            status = await c.post(factory.next())
            idle.append(c)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            status = 0
        _count(result, status, (time.perf_counter() - scheduled) * 1000)

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    for c in idle:
        if c.writer is not None:
            c.writer.close()
    return result


# --- Orchestration --------------------------------------------------------------------------------


async def _setup(url: str, users: int) -> tuple[uuid.UUID, str, list[str]]:
    from ingest import service

    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        async with conn.transaction():
            created = await service.create_source(conn, "bench")
        ids = [uuid.uuid4() for _ in range(users)]
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"bench{n}@example.com", "x", "Bench", "User") for n, u in enumerate(ids)],
            columns=("user_id", "email", "password_hash", "first_name", "last_name"),
        )
    finally:
        await conn.close()
    return created.source_id, created.write_key, [str(u) for u in ids]


def _cpu_seconds(pids: list[int], db_name: str) -> tuple[float, float]:
    """CPU seconds used so far by the server processes and by PostgreSQL backends of ``db_name``."""
    import psutil

    server = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                server += t.user + t.system
    backends = 0.0
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if db_name in " ".join(p.info["cmdline"] or []):
                t = p.cpu_times()
                backends += t.user + t.system
    return server, backends


@click.command("ingest")
@click.option("--clients", "-k", default=32, show_default=True, help="Concurrent keep-alive clients (b).")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each HTTP phase.")
@click.option("--copy-events", default=100_000, show_default=True, help="Events in each raw COPY run (a).")
@click.option("--max-connections", default=3, show_default=True, help="Raw COPY tries 1..N connections.")
@click.option(
    "--workers", default=1, show_default=True, help="Server processes (corp-astro serve --workers)."
)
@click.option(
    "--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures here."
)
def bench_ingest(
    clients: int, seconds: float, copy_events: int, max_connections: int, workers: int, json_out: Path | None
) -> None:
    """Raw binary COPY (a) vs end-to-end HTTP ingest (b): events/s, b/a, ack latency, RSS, overload."""
    import uvloop

    from core_api import migrate

    load = os.getloadavg()[0]
    base = resolve_database_url(get_settings())
    url = asyncio.run(_recreate(base))
    migrate.upgrade(url, "heads")
    source_id, write_key, users = asyncio.run(_setup(url, 1000))
    factory = BodyFactory(users, write_key)
    figures: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": round(load, 2),
        "clients": clients,
        "workers": workers,
        "seconds": seconds,
    }
    click.echo(f"machine: {os.cpu_count()} CPUs, 1-minute load {load:.1f} at start (shared machine)")

    # (a) raw COPY of the rows the server would write, in transactions the size of a full flush.
    batches = max(1, copy_events // EVENTS_PER_BATCH)
    chunks = _prebuilt_rows(factory, source_id, set(users), batches, 5_000)
    rows = sum(len(p) for _, p in chunks)
    click.echo(
        f"(a) raw binary COPY of {batches * EVENTS_PER_BATCH} pre-built events ({rows} property rows):"
    )
    asyncio.run(_raw_copy(url, chunks, 1))  # warm-up: caches, statistics, WAL segments
    best = 0.0
    for n in range(1, max_connections + 1):
        rate = max(asyncio.run(_raw_copy(url, chunks, n)) for _ in range(2))
        figures[f"copy_{n}conn_events_per_s"] = round(rate)
        click.echo(f"    {n} connection(s): {rate:,.0f} events/s")
        best = max(best, rate)
    figures["copy_best_events_per_s"] = round(best)
    ledger = max(asyncio.run(_raw_copy(url, chunks, n, ledger=True)) for n in range(1, max_connections + 1))
    figures["copy_best_with_ledger_events_per_s"] = round(ledger)
    click.echo(f"    best with the exactly-once ledger COPY in the same transaction: {ledger:,.0f} events/s")

    # The seed's FK triggers on the same kind of rows (20k events per run, one connection, warm stats).
    rounds = 3
    fk_sets = [_prebuilt_rows(factory, source_id, set(users), 200, 5_000) for _ in range(1 + 3 * rounds)]
    fk = asyncio.run(_fk_costs(url, fk_sets, rounds))
    figures.update({f"fk_{k}_events_per_s": round(v) for k, v in fk.items()})
    click.echo(
        "    FK triggers, 1 connection, median of 3: no FKs {no_fks:,.0f}; users FK only (this schema) "
        "{schema_users_fk_only:,.0f}; seed's both FKs {seed_both_fks:,.0f} events/s".format(**fk)
    )
    del chunks, fk_sets
    asyncio.run(_truncate(url))

    # (b) end to end over HTTP.
    server = Server(url, {}, workers)
    try:
        server.wait_ready()
        peak, at80, at2x = uvloop.run(_http_phases(server, factory, clients, seconds, figures, best, url))
    finally:
        server.stop()
    stored = asyncio.run(_count_rows(url))
    expected = peak.events_ok + at80.events_ok + at2x.events_ok + figures["warmup_events"]
    figures.update(stored_events=stored, acknowledged_events=expected)
    click.echo(f"    acknowledged {expected} events; stored {stored} (each acknowledged event exactly once)")
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))
    if stored != expected:
        raise click.ClickException("stored events differ from acknowledged events")


async def _count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM analytics_events")
        return n
    finally:
        await conn.close()


async def _http_phases(
    server: Server,
    factory: BodyFactory,
    clients: int,
    seconds: float,
    figures: dict[str, Any],
    best: float,
    url: str,
) -> tuple[PhaseResult, PhaseResult, PhaseResult]:
    warm = await _closed_loop(server.port, factory, clients, 2.0)
    figures["warmup_events"] = warm.events_ok
    pids = [server.proc.pid]

    t0 = time.monotonic()
    cpu0 = _cpu_seconds(pids, BENCH_DB)
    peak = await _closed_loop(server.port, factory, clients, seconds)
    cpu1 = _cpu_seconds(pids, BENCH_DB)
    rss_peak_phase = server.rss_between(t0, time.monotonic())
    ratio = peak.events_per_s / best if best else float("nan")
    events = max(1, peak.events_ok)
    server_us = (cpu1[0] - cpu0[0]) / events * 1e6
    pg_us = (cpu1[1] - cpu0[1]) / events * 1e6
    click.echo(
        f"(b) HTTP through `corp-astro serve`, {clients} keep-alive clients, {EVENTS_PER_BATCH}-event batches, "
        f"{PROPS} properties each:"
    )
    click.echo(
        f"    peak {peak.events_per_s:,.0f} events/s ({peak.ok} x 200, {peak.unavailable} x 503, "
        f"{peak.other} other); b/a = {ratio:.2f}; latency p50 {peak.pct(0.5):.1f} ms, p99 {peak.pct(0.99):.1f} ms"
    )
    click.echo(f"    CPU per event at peak: server {server_us:.0f} us, PostgreSQL backends {pg_us:.0f} us")
    figures.update(
        http_peak_events_per_s=round(peak.events_per_s),
        b_over_a=round(ratio, 3),
        peak_p50_ms=round(peak.pct(0.5), 1),
        peak_p99_ms=round(peak.pct(0.99), 1),
        peak_503=peak.unavailable,
        peak_server_cpu_us_per_event=round(server_us, 1),
        peak_pg_cpu_us_per_event=round(pg_us, 1),
    )

    rate80 = 0.8 * peak.ok / peak.seconds
    t0 = time.monotonic()
    at80 = await _open_loop(server.port, factory, rate80, seconds)
    rss_80 = server.rss_between(t0, time.monotonic())
    click.echo(
        f"    80% of peak ({rate80 * EVENTS_PER_BATCH:,.0f} events/s offered, open loop): "
        f"{at80.events_per_s:,.0f} events/s acked, p50 {at80.pct(0.5):.1f} ms, p99 {at80.pct(0.99):.1f} ms, "
        f"{at80.unavailable} x 503"
    )
    figures.update(
        at80_offered_events_per_s=round(rate80 * EVENTS_PER_BATCH),
        at80_events_per_s=round(at80.events_per_s),
        at80_p50_ms=round(at80.pct(0.5), 1),
        at80_p99_ms=round(at80.pct(0.99), 1),
        at80_503=at80.unavailable,
    )

    rate2x = 2.0 * peak.ok / peak.seconds
    t0 = time.monotonic()
    at2x = await _open_loop(server.port, factory, rate2x, seconds)
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
    return peak, at80, at2x
