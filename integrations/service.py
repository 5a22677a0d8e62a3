"""Webhooks logic: subscriptions with encrypted secrets, the catalogue, the delivery log.

Secrets are generated here, sealed (``kernel.crypto.SecretBox``) before they reach the repository, and
returned in clear only by ``create`` and ``rotate``. Nothing here logs a secret.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from integrations import catalogue, queue
from integrations import webhooks_sql as sql
from integrations.errors import (
    DeliveryNotFoundError,
    DeliveryNotRetryableError,
    WebhookDisabledError,
    WebhookNotFoundError,
)
from integrations.schemas import (
    DeliveryOut,
    EventTypeOut,
    EventTypesOut,
    StatsOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from integrations.signing import generate_secret
from integrations.ssrf import refusal
from kernel import events
from kernel.db import uuid7
from kernel.errors import ValidationError
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import changes, naive

if TYPE_CHECKING:
    import asyncpg

    from integrations.config import WebhookConfig
    from kernel.crypto import SecretBox

__all__ = [
    "check_pattern",
    "check_target",
    "create",
    "delete",
    "deliveries",
    "event_types",
    "get",
    "list_webhooks",
    "retry",
    "rotate",
    "send_test",
    "stats",
    "update",
]

T = TypeVar("T", bound=msgspec.Struct)
_KEY = tuple[dt.datetime, uuid.UUID]


def _struct(struct: type[T], row: Any, **extra: Any) -> T:
    """An output Struct from the row's columns of the same names; timestamps marked UTC."""
    values = {}
    for name in struct.__struct_fields__:
        value = extra[name] if name in extra else row[name]
        values[name] = value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else value
    return struct(**values)


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"`{field}` is not valid.", details=[{"field": f"body.{field}", "message": message}]
    )


def check_pattern(pattern: str) -> None:
    """422 ``validation_error`` listing the catalogue unless ``pattern`` is a known type or prefix."""
    if not catalogue.valid_pattern(pattern):
        raise _invalid("event_type", catalogue.unknown_pattern_message(pattern))


def check_target(url: str, config: WebhookConfig) -> None:
    """422 unless ``url`` is an https (or, when allowed, http) URL with a host and no credentials; a
    literal address must pass the SSRF guard now (names are checked again at every send)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise _invalid("target_url", f"Not a URL: {exc}.") from None
    schemes = ("https", "http") if config.allow_http else ("https",)
    if parts.scheme not in schemes:
        raise _invalid("target_url", f"The scheme must be {' or '.join(schemes)}.")
    if not host or parts.username is not None or parts.password is not None:
        raise _invalid("target_url", "The URL needs a host and must not carry credentials.")
    try:
        reason = refusal(host, config.allow_nets)
    except ValueError:
        return  # a name: resolved and checked at send time
    if reason is not None:
        raise _invalid("target_url", f"The address is refused ({reason}).")


async def create(
    conn: asyncpg.Connection, box: SecretBox, config: WebhookConfig, data: WebhookCreate
) -> WebhookWithSecret:
    """A new endpoint; its secret is in the answer and nowhere else ever again."""
    check_pattern(data.event_type)
    check_target(data.target_url, config)
    secret = generate_secret()
    values = {"webhook_id": uuid7(), **msgspec.structs.asdict(data), "secret": box.seal(secret)}
    row = await sql.insert(conn, values)
    return _struct(WebhookWithSecret, row, secret=secret)


async def _existing(conn: asyncpg.Connection, webhook_id: uuid.UUID, *, lock: bool = False) -> Any:
    row = await sql.get(conn, webhook_id, lock=lock)
    if row is None:
        raise WebhookNotFoundError("No such webhook.")
    return row


async def get(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> WebhookOut:
    """One endpoint (never its secret)."""
    return _struct(WebhookOut, await _existing(conn, webhook_id))


async def list_webhooks(
    conn: asyncpg.Connection, *, cursor: str | None, limit: int, client_id: str | None, status: str | None
) -> Page[WebhookOut]:
    """Endpoints, newest first, optionally of one client or in one status."""
    after = decode_cursor(cursor, _KEY)
    rows = await sql.page(conn, after=after, limit=limit, client_id=client_id, status=status)
    items = [_struct(WebhookOut, r) for r in rows]
    return make_page(items, limit, lambda w: (naive(w.created_at), w.webhook_id))


async def update(
    conn: asyncpg.Connection, config: WebhookConfig, webhook_id: uuid.UUID, data: WebhookUpdate
) -> WebhookOut:
    """Change the given fields; ``status: active`` re-enables a disabled endpoint."""
    values = changes(data)
    if "event_type" in values:
        check_pattern(values["event_type"])
    if "target_url" in values:
        check_target(values["target_url"], config)
    await _existing(conn, webhook_id, lock=True)
    row = await sql.update(conn, webhook_id, values) if values else await sql.get(conn, webhook_id)
    return _struct(WebhookOut, row)


async def delete(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> None:
    """Delete an endpoint and its delivery log."""
    if not await sql.delete(conn, webhook_id):
        raise WebhookNotFoundError("No such webhook.")


async def rotate(
    conn: asyncpg.Connection, box: SecretBox, config: WebhookConfig, webhook_id: uuid.UUID
) -> WebhookWithSecret:
    """A new secret, returned once; the old one keeps signing for the overlap (24 h by default)."""
    await _existing(conn, webhook_id, lock=True)
    secret = generate_secret()
    row = await sql.rotate(conn, webhook_id, box.seal(secret), config.numbers.rotation_overlap_seconds)
    return _struct(WebhookWithSecret, row, secret=secret)


async def deliveries(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, *, status: str | None, cursor: str | None, limit: int
) -> Page[DeliveryOut]:
    """An endpoint's deliveries, newest first, optionally in one status."""
    await _existing(conn, webhook_id)
    after = decode_cursor(cursor, _KEY)
    rows = await queue.page(conn, webhook_id, status=status, after=after, limit=limit)
    items = [_struct(DeliveryOut, r) for r in rows]
    return make_page(items, limit, lambda d: (naive(d.queued_at), d.delivery_id))


async def retry(conn: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryOut:
    """Queue a finished delivery again now, with the same ``webhook-id`` (409 while it is in progress)."""
    hook = await _existing(conn, webhook_id)
    if hook["status"] != "active":
        raise WebhookDisabledError("The webhook is disabled; re-enable it first.")
    row = await queue.retry(conn, webhook_id, delivery_id)
    if row is None:
        if await queue.get(conn, webhook_id, delivery_id) is None:
            raise DeliveryNotFoundError("No such delivery.")
        raise DeliveryNotRetryableError("The delivery is still pending or being attempted.")
    await events.wake(conn)
    return _struct(DeliveryOut, row)


async def send_test(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> DeliveryOut:
    """Queue a ``webhook.test`` event for this endpoint alone, whatever it subscribes to."""
    hook = await _existing(conn, webhook_id)
    if hook["status"] != "active":
        raise WebhookDisabledError("The webhook is disabled; re-enable it first.")
    event = events.Event(
        uuid7(), "webhook.test", events.event_body("webhook.test", {"webhook_id": webhook_id})
    )
    row = await queue.enqueue(conn, webhook_id, event)
    await events.wake(conn)
    return _struct(DeliveryOut, row)


def event_types() -> EventTypesOut:
    """The catalogue, with the JSON schema of each body."""
    items = [
        EventTypeOut(name=name, description=schema["description"], schema=catalogue.event_schema(name))
        for name, schema in sorted(catalogue.CATALOGUE.items())
    ]
    return EventTypesOut(items=items)


async def stats(conn: asyncpg.Connection, process: dict[str, Any] | None) -> StatsOut:
    """Queue depth and age from the database, with ``process``'s own counters."""
    row = await queue.queue_stats(conn)
    outbox = await events.pending_count(conn)
    return StatsOut(
        pending=row["pending"],
        processing=row["processing"],
        oldest_due_seconds=row["oldest_due_seconds"],
        outbox_events=outbox,
        process=process,
    )
