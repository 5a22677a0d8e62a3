"""What a write key cannot store: event times outside the retained window, and a context.ip that is not
an address (docs/event-time-window.md)."""

from __future__ import annotations

import datetime as dt

import asyncpg
import httpx
from litestar.testing import AsyncTestClient

from tests.integration.ingest.conftest import KeyedSource, count, track
from tests.support import LiveServer

Client = AsyncTestClient  # type: ignore[type-arg]


async def test_year_999_single_call_is_rejected_out_of_range(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    # The reproduced finding: this was a 200, and its row broke partition upkeep for good.
    msg = {"event": "x", "anonymousId": "a", "messageId": "old", "timestamp": "0999-06-15T00:00:00Z"}
    r = await client.post("/v1/track", json=msg, headers=source.auth)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_events"
    assert r.json()["details"] == [
        {
            "field": "body",
            "message": "timestamp out of range",
            "index": 0,
            "messageId": "old",
            "reason": "timestamp_out_of_range",
        }
    ]
    assert await count(conn, "analytics_events") == 0


async def test_out_of_range_events_are_rejected_one_by_one(
    client: Client, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    oldest = dt.date(today.year - 2, today.month, 1)  # the default window: 24 months
    msgs = [
        track("edge", timestamp=f"{oldest.isoformat()}T00:00:00Z"),
        track("before-edge", timestamp=f"{(oldest - dt.timedelta(days=1)).isoformat()}T23:59:59Z"),
        track("fifties", timestamp="1955-03-01T00:00:00Z"),
        track("skew", timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z"),
        track("future", timestamp="9999-12-31T23:59:59Z"),
    ]
    r = await client.post("/v1/batch", json={"batch": msgs}, headers=source.auth)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    assert [(e["messageId"], e["reason"]) for e in r.json()["rejected"]] == [
        ("before-edge", "timestamp_out_of_range"),
        ("fifties", "timestamp_out_of_range"),
        ("skew", "invalid_timestamp"),
    ]
    rows = {r["message_id"]: r["timestamp"] for r in await conn.fetch("SELECT * FROM analytics_events")}
    assert rows["edge"] == dt.datetime.combine(oldest, dt.time())
    assert abs(rows["future"] - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)


async def test_context_ip_that_is_not_an_address_is_replaced_by_the_peer(
    live: tuple[LiveServer, KeyedSource], conn: asyncpg.Connection
) -> None:
    # Over real TCP, so the peer is a real address (127.0.0.1), as the server sees it.
    server, source = live
    msgs = [
        track("sql", context={"ip": "not-an-ip'); DROP TABLE x;--"}),
        track("zone", context={"ip": "fe80::1%eth0"}),
        track("good", context={"ip": "203.0.113.9"}),
        track("number", context={"ip": 1234}),
    ]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        r = await http.post("/v1/batch", json={"batch": msgs}, auth=(source.write_key, ""))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 4
    rows = {r["message_id"]: r["ip_address"] for r in await conn.fetch("SELECT * FROM analytics_events")}
    assert rows == {"sql": "127.0.0.1", "zone": "fe80::1", "good": "203.0.113.9", "number": "127.0.0.1"}
    leaked = await count(
        conn, "event_properties", "property_name = 'context.ip' OR property_value LIKE '%DROP%'"
    )
    assert leaked == 0
