"""SQL of the delivery queue (``webhook_deliveries``). Never commits: callers own the transaction.

A delivery is one event for one endpoint. Its ``status`` moves ``pending`` -> ``processing`` (claimed,
under a lease) -> ``delivered``, or back to ``pending`` with a later ``next_attempt_at`` after a failure,
or to ``failed`` when the schedule is exhausted or the endpoint is disabled. Claims use ``FOR UPDATE SKIP
LOCKED``, so two processes never claim the same row; a lease that runs out (the sender crashed) makes
the row claimable again, with the same event id (``webhook-id``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from integrations.models import WebhookDelivery
from kernel.resources import columns, fetch_all

if TYPE_CHECKING:
    import asyncpg

    from kernel.events import Event

__all__ = [
    "claim",
    "disable_endpoint",
    "enqueue",
    "fan_out",
    "get",
    "note_failure",
    "page",
    "queue_stats",
    "record",
    "record_delivered",
    "retry",
]

Row = Any  # asyncpg.Record
_NOW = "(now() AT TIME ZONE 'UTC')"
COLUMNS = columns(WebhookDelivery.__table__)
_MATCH = """w.status = 'active' AND (w.event_type IN ('*', e.type)
             OR (w.event_type LIKE '%.*' AND starts_with(e.type, left(w.event_type, -1))))"""


async def fan_out(
    conn: asyncpg.Connection,
    events: Sequence[Event],
    *,
    client_id: str | None = None,
    only: uuid.UUID | None = None,
    exclude: uuid.UUID | None = None,
) -> int:
    """One pending delivery per event and active matching endpoint (of ``client_id`` when given; only
    the endpoint ``only``, or every one but ``exclude``, when given); the number queued."""
    if not events:
        return 0
    status: str = await conn.execute(
        f"""INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
            SELECT w.webhook_id, e.id, e.type, e.payload
            FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e(id, type, payload)
            JOIN webhooks w ON {_MATCH}
            WHERE ($4::text IS NULL OR w.client_id = $4) AND ($5::uuid IS NULL OR w.webhook_id = $5)
              AND ($6::uuid IS NULL OR w.webhook_id <> $6)""",
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.payload for e in events],
        client_id,
        only,
        exclude,
    )
    return int(status.split()[-1])


async def claim(conn: asyncpg.Connection, limit: int, lease: float, per_endpoint: int) -> list[Row]:
    """Claim up to ``limit`` due deliveries (pending and due, or processing with an expired lease), at
    most ``per_endpoint`` in flight per endpoint counting other processes' live leases; each claimed row
    has its attempt counted and a lease of ``lease`` seconds. Rows come with their endpoint."""
    due = await fetch_all(
        conn,
        f"""SELECT delivery_id, webhook_id FROM webhook_deliveries
            WHERE (status = 'pending' AND next_attempt_at <= {_NOW})
               OR (status = 'processing' AND locked_until < {_NOW})
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    if not due:
        return []
    busy = dict(
        await conn.fetch(
            f"""SELECT webhook_id, count(*) FROM webhook_deliveries
                WHERE status = 'processing' AND locked_until >= {_NOW} AND webhook_id = ANY($1::uuid[])
                GROUP BY webhook_id""",
            list({r["webhook_id"] for r in due}),
        )
    )
    chosen = []
    for row in due:
        if busy.get(row["webhook_id"], 0) < per_endpoint:
            busy[row["webhook_id"]] = busy.get(row["webhook_id"], 0) + 1
            chosen.append(row["delivery_id"])
    return await fetch_all(
        conn,
        f"""UPDATE webhook_deliveries d SET status = 'processing', attempts = d.attempts + 1,
                locked_until = {_NOW} + make_interval(secs => $2),
                processing_started_at = coalesce(d.processing_started_at, {_NOW})
            FROM webhooks w WHERE d.delivery_id = ANY($1::uuid[]) AND w.webhook_id = d.webhook_id
            RETURNING d.delivery_id, d.webhook_id, d.event_id, d.event_type, d.payload, d.attempts,
                d.queued_at, w.target_url, w.secret, w.previous_secret, w.previous_secret_expires_at,
                w.status AS webhook_status, w.client_id""",
        chosen,
        lease,
    )


async def record(
    conn: asyncpg.Connection,
    delivery: Row,
    outcome: tuple[str, int | None, str | None, str | None],
    retry_in: float | None,
) -> bool:
    """Store an attempt's ``(status, response_code, response_body, error_message)`` if this process
    still holds the claim (same attempt, still processing); ``retry_in``: seconds to the next attempt
    of a failure. False when the claim was lost (the lease expired and another process took it)."""
    status, code, body, error = outcome
    stamp = "delivered_at" if status == "delivered" else "failed_at"
    result: str = await conn.execute(
        f"""UPDATE webhook_deliveries SET status = $3, response_code = $4, response_body = $5,
                error_message = $6, {stamp} = {_NOW}, locked_until = NULL,
                next_attempt_at = CASE WHEN $7::float8 IS NULL THEN next_attempt_at
                                       ELSE {_NOW} + make_interval(secs => $7::float8) END
            WHERE delivery_id = $1 AND attempts = $2 AND status = 'processing'""",
        delivery["delivery_id"],
        delivery["attempts"],
        status,
        code,
        body,
        error,
        retry_in,
    )
    if result.endswith(" 0"):
        return False
    if status == "delivered":
        await conn.execute(
            "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = $1 AND failing_since IS NOT NULL",
            delivery["webhook_id"],
        )
    return True


async def record_delivered(conn: asyncpg.Connection, done: Sequence[tuple[Any, ...]]) -> int:
    """Record successful attempts ``(delivery_id, attempt, response_code, response_body)`` in one
    statement, each only if its claim still holds; clears the endpoints' failure clocks. The number kept."""
    if not done:
        return 0
    ids, attempts, codes, bodies = (list(c) for c in zip(*done, strict=True))
    hooks = await conn.fetch(
        f"""UPDATE webhook_deliveries d SET status = 'delivered', response_code = u.code,
                response_body = u.body, error_message = NULL, delivered_at = {_NOW}, locked_until = NULL
            FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[]) AS u(id, attempts, code, body)
            WHERE d.delivery_id = u.id AND d.attempts = u.attempts AND d.status = 'processing'
            RETURNING d.webhook_id""",
        ids,
        attempts,
        codes,
        bodies,
    )
    await conn.execute(
        "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = ANY($1::uuid[]) AND failing_since IS NOT NULL",
        list({r["webhook_id"] for r in hooks}),
    )
    return len(hooks)


async def note_failure(conn: asyncpg.Connection, webhook_id: uuid.UUID, disable_after: float) -> bool:
    """Start the endpoint's failure clock if it is not running; True once it has run ``disable_after``
    seconds without a success."""
    overdue: bool | None = await conn.fetchval(
        f"""UPDATE webhooks SET failing_since = coalesce(failing_since, {_NOW}) WHERE webhook_id = $1
            RETURNING failing_since <= {_NOW} - make_interval(secs => $2)""",
        webhook_id,
        disable_after,
    )
    return bool(overdue)


async def disable_endpoint(conn: asyncpg.Connection, webhook_id: uuid.UUID, reason: str) -> Row | None:
    """Disable an active endpoint and fail its waiting deliveries; the endpoint, or None if it was not
    active (another process disabled it first)."""
    row = await conn.fetchrow(
        f"""UPDATE webhooks SET status = 'disabled', updated_at = {_NOW}
            WHERE webhook_id = $1 AND status = 'active' RETURNING webhook_id, client_id""",
        webhook_id,
    )
    if row is not None:
        await conn.execute(
            f"""UPDATE webhook_deliveries SET status = 'failed', failed_at = {_NOW},
                    error_message = $2, locked_until = NULL
                WHERE webhook_id = $1 AND status = 'pending'""",
            webhook_id,
            f"endpoint disabled: {reason}",
        )
    return row


async def get(conn: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Row | None:
    """One delivery of one endpoint."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM webhook_deliveries WHERE delivery_id = $1 AND webhook_id = $2",
        delivery_id,
        webhook_id,
    )


async def page(
    conn: asyncpg.Connection,
    webhook_id: uuid.UUID,
    *,
    status: str | None,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """Up to ``limit + 1`` deliveries of an endpoint, newest first, after the key ``after``."""
    return await fetch_all(
        conn,
        f"""SELECT {COLUMNS} FROM webhook_deliveries
            WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamp IS NULL OR (queued_at, delivery_id) < ($3, $4::uuid))
            ORDER BY queued_at DESC, delivery_id DESC LIMIT $5""",
        webhook_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )


async def retry(conn: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Row | None:
    """Queue a delivered or failed delivery again, now, with a fresh schedule (same ``webhook-id``);
    None if it is not in such a state."""
    return await conn.fetchrow(
        f"""UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = {_NOW},
                locked_until = NULL
            WHERE delivery_id = $1 AND webhook_id = $2 AND status IN ('delivered', 'failed')
            RETURNING {COLUMNS}""",
        delivery_id,
        webhook_id,
    )


async def queue_stats(conn: asyncpg.Connection) -> Row:
    """Deliveries waiting (pending), in flight, and the age in seconds of the oldest one due."""
    return await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                   count(*) FILTER (WHERE status = 'processing') AS processing,
                   coalesce(extract(epoch FROM {_NOW} - min(next_attempt_at)
                       FILTER (WHERE status = 'pending' AND next_attempt_at <= {_NOW})), 0)::float8
                       AS oldest_due_seconds
            FROM webhook_deliveries WHERE status IN ('pending', 'processing')"""
    )


async def enqueue(conn: asyncpg.Connection, webhook_id: uuid.UUID, event: Event) -> Row:
    """One pending delivery of ``event`` to one endpoint, whatever it subscribes to (``webhook.test``)."""
    return await conn.fetchrow(
        f"""INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
            VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}""",
        webhook_id,
        event.event_id,
        event.event_type,
        event.payload,
    )
