"""Wire shapes of the ingest API and the key-management commands (msgspec Structs)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

__all__ = ["BatchEnvelope", "CreatedSource", "IngestResponse", "RejectedEvent", "SourceOut"]


class BatchEnvelope(msgspec.Struct):
    """``POST /v1/batch``: the messages stay raw so that each is size-checked and decoded on its own."""

    batch: list[msgspec.Raw]
    sentAt: Any = None
    writeKey: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class RejectedEvent(msgspec.Struct):
    """One event that was not stored: its position in the request, its messageId and a reason code."""

    index: int
    messageId: str | None
    reason: str


class IngestResponse(msgspec.Struct):
    """The 200 body: ``success`` is always true; rejected events are listed, the rest were committed."""

    success: bool
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]


class SourceOut(msgspec.Struct):
    """An event source as listed (never with its key)."""

    source_id: uuid.UUID
    name: str
    key_prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class CreatedSource(msgspec.Struct):
    """A new source and its write key, shown this once."""

    source_id: uuid.UUID
    name: str
    key_prefix: str
    write_key: str
