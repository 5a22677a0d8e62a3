"""SIGTERM in the middle of a load: every batch answered 200 is stored, no request hangs, the server
exits 0 within its grace period."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import httpx

from tests.integration.ingest.conftest import KeyedSource, track
from tests.support import LiveServer

GRACE = 20.0
CLIENT_TIMEOUT = 40.0  # longer than the grace period: a request that hangs shows as a timeout
THREADS = 6
BATCH = 50


@dataclass
class Client:
    acknowledged: list[list[str]] = field(default_factory=list)  # the ids of each batch answered 200
    statuses: list[int] = field(default_factory=list)
    refused: int = 0  # connection refused or closed before an answer: nothing acknowledged
    wrong: list[object] = field(default_factory=list)  # 200 answers not accounting for every event
    answered_at: list[float] = field(default_factory=list)  # when each 200 arrived (monotonic)
    timeouts: int = 0


def load(
    server: LiveServer, source: KeyedSource, me: Client, run: str, n: int, stop: threading.Event
) -> None:
    seq = 0
    with httpx.Client(base_url=server.base_url, headers=source.auth, timeout=CLIENT_TIMEOUT) as http:
        while not stop.is_set():
            ids = [f"sd-{run}-{n}-{seq}-{i}" for i in range(BATCH)]
            seq += 1
            try:
                r = http.post("/v1/batch", json={"batch": [track(i) for i in ids]})
            except httpx.TimeoutException:
                me.timeouts += 1
                return
            except httpx.TransportError:
                me.refused += 1
                if server.proc is not None and server.proc.poll() is not None:
                    return
                time.sleep(0.05)
                continue
            me.statuses.append(r.status_code)
            if r.status_code == 200:
                body = r.json()
                if body["accepted"] + body["duplicates"] != BATCH:
                    me.wrong.append(body)
                me.acknowledged.append(ids)
                me.answered_at.append(time.monotonic())


async def test_sigterm_under_load(database_url: str, source: KeyedSource, conn: asyncpg.Connection) -> None:
    code, took, clients, signalled = await asyncio.to_thread(_load_and_terminate, database_url, source)
    assert code == 0
    assert [w for c in clients for w in c.wrong] == []
    assert took < GRACE, took
    assert sum(c.timeouts for c in clients) == 0
    acknowledged = [i for c in clients for batch in c.acknowledged for i in batch]
    assert len(acknowledged) >= 20 * BATCH
    stored = await conn.fetchval(
        "SELECT count(DISTINCT message_id) FROM analytics_events WHERE message_id = ANY($1::text[])",
        acknowledged,
    )
    assert stored == len(acknowledged)
    statuses = {s for c in clients for s in c.statuses}
    assert statuses <= {200, 503}, statuses
    print(
        f"SIGTERM under load: {len(acknowledged)} events acknowledged and stored, exit 0 after {took:.1f} s, "
        f"{sum(c.refused for c in clients)} requests refused at the socket, statuses {sorted(statuses)}, "
        f"{sum(t > signalled for c in clients for t in c.answered_at)} batches answered 200 after the signal"
    )


def _load_and_terminate(database_url: str, source: KeyedSource) -> tuple[int, float, list[Client], float]:
    """Clients posting batches; SIGTERM to the server's pid once 20 batches were acknowledged."""
    server = LiveServer(database_url, env={"CORP_ASTRO_SHUTDOWN_GRACE_SECONDS": str(GRACE)}).start(timeout=90)
    run = uuid.uuid4().hex[:8]
    clients = [Client() for _ in range(THREADS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(server, source, c, run, n, stop), daemon=True)
        for n, c in enumerate(clients)
    ]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while sum(len(c.acknowledged) for c in clients) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.proc is not None
        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        code = server.proc.wait(GRACE + 10)
        took = time.monotonic() - signalled
        stop.set()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
            assert not t.is_alive(), "a client request hung"
    finally:
        stop.set()
        server.stop()
    return code, took, clients, signalled
