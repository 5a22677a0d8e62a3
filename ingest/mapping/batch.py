"""What the mapping takes from a request and gives back: ``RequestInfo`` in, a ``Batch`` of rows out."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batch", "Rejection", "RequestInfo"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the request itself contributes to every event."""

    source_id: uuid.UUID
    received_at: dt.datetime  # naive UTC
    peer_ip: str | None
    user_agent: str | None
    max_event_bytes: int = 32 * 1024
    max_future: dt.timedelta = dt.timedelta(hours=1)
    # Events before the first day of the month this many months before received_at are rejected.
    max_past_months: int = 24


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event that was not stored, Amplitude-style: its index in the request, messageId and why."""

    index: int
    message_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The wire form."""
        return {"index": self.index, "messageId": self.message_id, "reason": self.reason}


@dataclass(slots=True)
class Batch:
    """The accepted events of one request as COPY-ready rows, plus the rejected ones.

    ``events[i]`` is an ``analytics_events`` row whose ``user_id`` slot holds a *candidate* (the userId
    parsed as a UUID); the flush keeps it only if that user exists. ``properties[i]`` are its property
    rows. ``indexes[i]`` and ``message_ids[i]`` locate the event in the request.
    """

    events: list[tuple[Any, ...]] = field(default_factory=list)
    properties: list[list[tuple[Any, ...]]] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)
