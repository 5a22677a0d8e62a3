"""Events a domain announces to the outside world (webhooks), recorded in the domain's own transaction.

``emit`` appends the event to the kernel's ``event_outbox`` on the caller's connection, inside the
transaction the boundary (route, job, command) already opened: a rolled-back change emits nothing, and
a committed one is never lost (a transactional outbox). It also ``NOTIFY``s ``CHANNEL``, which PostgreSQL
delivers only on commit, so a listening dispatcher wakes at once; it polls as well, so a missed
notification only costs latency.

The integrations domain takes events with ``take`` (in its own transaction) and fans each out into
deliveries for the matching subscriptions. Domains never import integrations: they only emit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from kernel.db import uuid7

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "CHANNEL",
    "Event",
    "emit",
    "emit_many",
    "emit_once",
    "event_body",
    "pending_count",
    "take",
    "wake",
]

# One channel for "there is work for the webhook dispatcher": new events and new or retried deliveries.
CHANNEL = "corp_astro_webhooks"

_encoder = msgspec.json.Encoder()


class Event(msgspec.Struct, frozen=True):
    """An event taken from the outbox: its id (the deliveries' ``webhook-id``), type and exact body."""

    event_id: uuid.UUID
    event_type: str
    payload: str


def event_body(event_type: str, data: dict[str, Any], at: dt.datetime | None = None) -> str:
    """The JSON body receivers get, as Standard Webhooks recommends: ``{type, timestamp, data}``."""
    when = at or dt.datetime.now(dt.UTC)
    return _encoder.encode({"type": event_type, "timestamp": when, "data": data}).decode()


async def emit(conn: asyncpg.Connection, event_type: str, data: dict[str, Any]) -> uuid.UUID:
    """Record ``event_type`` with ``data`` (JSON-encodable: str, numbers, UUIDs, dates) in the caller's
    transaction; returns the event id. One statement: the insert and the notification."""
    event_id = uuid7()
    await conn.execute(
        """WITH e AS (INSERT INTO event_outbox (event_id, event_type, payload) VALUES ($1, $2, $3))
           SELECT pg_notify($4, '')""",
        event_id,
        event_type,
        event_body(event_type, data),
        CHANNEL,
    )
    return event_id


async def emit_many(conn: asyncpg.Connection, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """``emit`` for several ``(event_type, data)`` at once, in one statement."""
    if not items:
        return
    await conn.execute(
        """WITH e AS (INSERT INTO event_outbox (event_id, event_type, payload)
                      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]))
           SELECT pg_notify($4, '')""",
        [uuid7() for _ in items],
        [t for t, _ in items],
        [event_body(t, d) for t, d in items],
        CHANNEL,
    )


async def emit_once(conn: asyncpg.Connection, key: str, event_type: str, data: dict[str, Any]) -> bool:
    """``emit`` unless an event with ``key`` was emitted before (e.g. one SRM alert per experiment
    phase, however often the results are computed); True when it emitted."""
    first = await conn.fetchval(
        "INSERT INTO event_keys (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true", key[:255]
    )
    if first:
        await emit(conn, event_type, data)
    return bool(first)


async def take(conn: asyncpg.Connection, limit: int) -> list[Event]:
    """Remove and return up to ``limit`` events, oldest first, in the caller's transaction.

    ``SKIP LOCKED``: several processes take disjoint events; if the caller's transaction rolls back,
    the events stay for the next taker.
    """
    rows = await conn.fetch(
        """DELETE FROM event_outbox WHERE event_id = ANY(ARRAY(
             SELECT event_id FROM event_outbox ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED))
           RETURNING event_id, event_type, payload""",
        limit,
    )
    events = [Event(r["event_id"], r["event_type"], r["payload"]) for r in rows]
    events.sort(key=lambda e: e.event_id)
    return events


async def pending_count(conn: asyncpg.Connection) -> int:
    """Events not taken yet (a gauge for operators)."""
    n: int = await conn.fetchval("SELECT count(*) FROM event_outbox")
    return n


async def wake(conn: asyncpg.Connection) -> None:
    """Tell the dispatchers there is work (sent when the caller's transaction commits)."""
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
