"""Reads of ingest's ``analytics_events``/``event_properties`` (declared in tests/unit/test_architecture.py):
the event matcher's (newly ingested events past a watermark) and ``wait_for_event``'s (one user's event
since a step started). Never commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kernel.resources import fetch_all

if TYPE_CHECKING:
    import asyncpg

__all__ = ["event_properties", "events_after", "find_event", "properties_of"]

Row = Any  # asyncpg.Record
_EVENT_COLUMNS = """e.event_id, e.event_name, e.user_id, e.anonymous_id, e.external_user_id,
    e.timestamp, e.created_at"""


async def events_after(
    conn: asyncpg.Connection,
    after: tuple[dt.datetime, uuid.UUID],
    names: list[str],
    until: dt.datetime,
    limit: int,
) -> list[Row]:
    """Up to ``limit`` events named one of ``names``, stored after the key ``after`` (created_at,
    event_id) and at or before ``until``, in that order."""
    return await fetch_all(
        conn,
        f"""SELECT {_EVENT_COLUMNS} FROM analytics_events e
            WHERE e.event_name = ANY($1::text[]) AND e.created_at >= $2 AND e.created_at <= $4
              AND (e.created_at, e.event_id) > ($2, $3)
            ORDER BY e.created_at, e.event_id LIMIT $5""",
        names,
        after[0],
        after[1],
        until,
        limit,
    )


async def event_properties(
    conn: asyncpg.Connection, keys: Sequence[tuple[uuid.UUID, dt.datetime]]
) -> list[Row]:
    """The properties of the events ``(event_id, timestamp)``."""
    return await fetch_all(
        conn,
        """SELECT p.event_id, p.property_name, p.property_value
           FROM unnest($1::uuid[], $2::timestamp[]) AS k(id, ts)
           JOIN event_properties p ON p.event_id = k.id AND p.timestamp = k.ts""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


async def find_event(
    conn: asyncpg.Connection, name: str, user: str, stored_after: dt.datetime, until: dt.datetime
) -> list[Row]:
    """Events ``name`` of ``user`` (account id, external or anonymous id) stored (``created_at``, the
    real clock) at or after ``stored_after`` whose own ``timestamp`` is at or before ``until``."""
    return await fetch_all(
        conn,
        f"""SELECT {_EVENT_COLUMNS} FROM analytics_events e
            WHERE e.event_name = $1 AND e.created_at >= $3 AND e."timestamp" <= $4
              AND (e.user_id::text = $2 OR e.external_user_id = $2 OR e.anonymous_id = $2)
            ORDER BY e.created_at, e.event_id LIMIT 20""",
        name,
        user,
        stored_after,
        until,
    )


async def properties_of(conn: asyncpg.Connection, events: Sequence[Any]) -> dict[Any, dict[str, str]]:
    """``{event_id: {property: value}}`` for the event rows ``events``."""
    props: dict[Any, dict[str, str]] = {e["event_id"]: {} for e in events}
    for p in await event_properties(conn, [(e["event_id"], e["timestamp"]) for e in events]):
        props[p["event_id"]][p["property_name"]] = p["property_value"]
    return props
