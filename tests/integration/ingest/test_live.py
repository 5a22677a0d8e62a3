"""Against a real server process: the Segment SDK, concurrent retries, streaming limits, a PostgreSQL restart."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import asyncpg
import httpx
import pytest
from segment.analytics.client import Client as SegmentClient

from tests.integration.ingest.conftest import KeyedSource, count, track
from tests.support import EmbeddedTestServer, LiveServer

Live = tuple[LiveServer, KeyedSource]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_segment_sdk_round_trip(live: Live, conn: asyncpg.Connection, gzip: bool) -> None:
    server, source = live
    errors: list[object] = []
    sdk = SegmentClient(
        source.write_key,
        host=server.base_url,
        gzip=gzip,
        max_retries=3,
        upload_size=40,
        on_error=lambda exc, batch: errors.append(exc),
    )
    sent: dict[str, dict[str, object]] = {}

    def send() -> None:
        for i in range(120):
            props = {"plan": "pro", "index": i, "nested": {"a": [1, 2]}}
            ok, msg = sdk.track(f"user-{i % 7}", "Chart Viewed", props, message_id=f"sdk-{gzip}-{i}")
            assert ok
            sent[msg["messageId"]] = props
        sdk.identify("user-1", {"email": "u1@example.com"}, message_id=f"sdk-{gzip}-identify")
        sdk.page("user-1", "Docs", "Install", {"path": "/install"}, message_id=f"sdk-{gzip}-page")
        sdk.flush()
        sdk.shutdown()

    await asyncio.to_thread(send)
    assert errors == []
    assert await count(conn, "analytics_events") == 122
    assert await count(conn, "(SELECT DISTINCT message_id FROM analytics_events) d") == 122
    rows = await conn.fetch(
        """SELECT e.message_id, p.property_name, p.property_value FROM analytics_events e
           JOIN event_properties p USING (event_id, "timestamp") WHERE e.event_name = 'Chart Viewed'"""
    )
    got: dict[str, dict[str, str]] = {}
    for r in rows:
        got.setdefault(r["message_id"], {})[r["property_name"]] = r["property_value"]
    assert set(got) == set(sent)
    for mid, props in sent.items():
        assert got[mid]["plan"] == "pro"
        assert got[mid]["index"] == str(props["index"])
        assert got[mid]["nested"] == '{"a":[1,2]}'
        assert got[mid]["context.library"].startswith('{"name":"analytics-python"')
    assert (
        await conn.fetchval(
            "SELECT event_name FROM analytics_events WHERE message_id = $1", f"sdk-{gzip}-page"
        )
        == "Install"
    )
    traits = await conn.fetchval(
        """SELECT property_value FROM event_properties p JOIN analytics_events e USING (event_id, "timestamp")
           WHERE e.message_id = $1 AND p.property_name = 'email'""",
        f"sdk-{gzip}-identify",
    )
    assert traits == "u1@example.com"


async def test_same_batch_twice_concurrently_with_different_sent_at(
    live: Live, conn: asyncpg.Connection
) -> None:
    server, source = live
    msgs = [track(f"dup-{i}", timestamp="2026-11-20T10:00:00Z") for i in range(300)]
    async with httpx.AsyncClient(base_url=server.base_url, headers=source.auth, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post("/v1/batch", json={"batch": msgs, "sentAt": f"2026-11-20T10:00:0{n}Z"})
                for n in range(1, 5)
            )
        )
    assert [r.status_code for r in responses] == [200] * 4
    bodies = [r.json() for r in responses]
    assert sum(b["accepted"] for b in bodies) == 300
    assert sum(b["duplicates"] for b in bodies) == 900
    assert await count(conn, "analytics_events") == 300
    assert await count(conn, "event_properties") == 600


def test_body_over_limit_is_refused_while_streaming(live: Live) -> None:
    """No Content-Length (chunked): the server answers 413 before the client has sent the whole body."""
    server, source = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        auth = source.auth["Authorization"].encode()
        s.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nAuthorization: "
            + auth
            + b"\r\nContent-Type: application/json\r\n\r\n"
        )
        chunk = b"x" * 65536
        sent = 0
        response = b""
        s.settimeout(0.05)
        while sent < 5_000_000 and b"\r\n\r\n" not in response:
            try:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            except OSError:
                break
            with contextlib.suppress(TimeoutError):
                response += s.recv(4096)
        s.settimeout(10)
        while b"\r\n\r\n" not in response:
            more = s.recv(4096)
            if not more:
                break
            response += more
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 2_000_000  # refused soon after the 500 KB mark, not after reading everything


async def test_database_restart_during_ingest_loses_no_acknowledged_event(
    live: Live, conn: asyncpg.Connection, embedded_pg: EmbeddedTestServer | None, database_url: str
) -> None:
    if embedded_pg is None:
        pytest.skip("needs the embedded test server to restart it (TEST_DATABASE_URL is set)")
    server, source = live
    acked: list[str] = []
    statuses: list[int] = []
    stop_sending = asyncio.Event()

    async def sender(worker: int) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, headers=source.auth, timeout=30) as http:
            n = 0
            while not stop_sending.is_set():
                ids = [f"w{worker}-b{n}-{i}" for i in range(20)]
                n += 1
                body = {"batch": [track(m) for m in ids]}
                while True:  # an SDK's retry loop: same messages until acknowledged
                    try:
                        r = await http.post("/v1/batch", json=body)
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            acked.extend(ids)
                            break
                        assert r.status_code == 503, r.text
                        assert "retry-after" in r.headers
                    except httpx.TransportError:
                        statuses.append(0)
                    await asyncio.sleep(0.1)

    await conn.close()
    tasks = [asyncio.create_task(sender(w)) for w in range(4)]
    await asyncio.sleep(1.0)
    await asyncio.to_thread(embedded_pg.stop)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(embedded_pg.start)
    await asyncio.sleep(3.0)
    stop_sending.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)

    assert 503 in statuses  # the outage was seen, and answered as "not committed, retry"
    after_restart = statuses[statuses.index(503) :]
    assert 200 in after_restart  # and ingest recovered without restarting the app
    check = await asyncpg.connect(database_url)
    try:
        stored = [r[0] for r in await check.fetch("SELECT message_id FROM analytics_events")]
    finally:
        await check.close()
    assert len(stored) == len(set(stored))  # exactly once, retries included
    assert set(acked) <= set(stored)  # no acknowledged event lost
