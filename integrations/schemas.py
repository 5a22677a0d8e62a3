"""Request and response bodies of the webhooks API (the seed's column names)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from kernel.resources import Name, Text

__all__ = [
    "DeliveryOut",
    "DeliveryStatus",
    "EventTypeOut",
    "EventTypesOut",
    "StatsOut",
    "WebhookCreate",
    "WebhookOut",
    "WebhookStatus",
    "WebhookUpdate",
    "WebhookWithSecret",
]

WebhookStatus = Literal["active", "disabled"]
DeliveryStatus = Literal["pending", "processing", "delivered", "failed"]
EventPattern = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.*]+$")]
TargetUrl = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\s\x00]+$")]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/webhooks``: ``event_type`` is a catalogue name, ``*`` or a prefix such as ``experiment.*``."""

    client_id: Name
    event_type: EventPattern
    target_url: TargetUrl
    description: Text | None = None
    status: WebhookStatus = "active"


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """``PATCH /v1/webhooks/{webhook_id}``: the fields given change."""

    event_type: EventPattern | UnsetType = UNSET
    target_url: TargetUrl | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    status: WebhookStatus | UnsetType = UNSET


class WebhookOut(msgspec.Struct):
    """An endpoint, without its secret (shown only at creation and rotation)."""

    webhook_id: uuid.UUID
    client_id: str
    event_type: str
    target_url: str
    description: str | None
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookWithSecret(WebhookOut):
    """An endpoint with its signing secret: the answer of creation and ``rotate-secret``, only."""

    secret: str = ""


class DeliveryOut(msgspec.Struct):
    """One event for one endpoint: its state, its last answer, and when each thing happened."""

    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    payload: str
    status: str
    attempts: int
    response_code: int | None
    response_body: str | None
    error_message: str | None
    queued_at: dt.datetime
    processing_started_at: dt.datetime | None
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None
    next_attempt_at: dt.datetime


class EventTypeOut(msgspec.Struct):
    """One catalogue entry: its name, what it means, and the JSON schema of the body receivers get."""

    name: str
    description: str
    schema: dict[str, Any]


class StatsOut(msgspec.Struct):
    """``GET /v1/webhooks/stats``: the queue (all processes) and this process's dispatcher counters
    (None when it runs no dispatcher): attempts by outcome and latency quantiles in seconds."""

    pending: int
    processing: int
    oldest_due_seconds: float
    outbox_events: int
    process: dict[str, Any] | None


class EventTypesOut(msgspec.Struct):
    """``GET /v1/webhooks/event-types``."""

    items: list[EventTypeOut]
