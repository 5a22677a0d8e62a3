"""What the mapping takes from a request and gives back: ``RequestInfo`` in, a ``Batch`` of rows out."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from asyncpg.pgproto.pgproto import UUID as PgUUID

from ingest.mapping.values import split_uuids

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


# Slots of a compact event row (``Batch.rows``): the event's own values in EVENT_COLUMNS order, without
# event_id (``Batch.event_ids``) and without source_id and received_at, which the whole request shares.
ROW_USER_ID = 0
ROW_TIME = 7
ROW_MESSAGE_ID = 8


@dataclass(slots=True)
class Batch:
    """The accepted events of one request, held column-friendly for the flush's binary COPY, plus the
    rejected ones.

    - ``keys[i]``: event i's key in the exactly-once ledger, uuid5(source_id, messageId);
    - ``event_ids``: the events' event_ids, 16 bytes each (UUIDv7s of the request, time-ordered so that
      they land at the right edge of the event tables' indexes);
    - ``rows[i]``: its own values (user_id candidate, event_name, event_category, device_id, session_id,
      ip_address, user_agent, timestamp, message_id, external_user_id, anonymous_id); the ``user_id``
      slot holds a *candidate* (the userId parsed as a UUID), which the flush keeps only if that user
      exists;
    - its property rows are ``names``/``values`` from position ``sum(counts[:i])``, ``counts[i]`` of them,
      with ids ``property_ids`` (16 bytes each, in the same order: UUIDv7s of one request);
    - ``indexes[i]`` and ``message_ids[i]`` locate event i in the request.

    ``events`` and ``properties`` give the same rows as full tuples in COPY column order (tests, tools).
    """

    source_id: uuid.UUID
    received_at: dt.datetime
    keys: list[Any] = field(default_factory=list)
    event_ids: bytes = b""
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    property_ids: bytes = b""
    indexes: list[int] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def events(self) -> list[tuple[Any, ...]]:
        """``analytics_events`` rows in ``EVENT_COLUMNS`` order (not the hot path)."""
        src, received = self.source_id, self.received_at
        return [
            (i, *r[:8], src, *r[8:], received)
            for i, r in zip(split_uuids(self.event_ids), self.rows, strict=True)
        ]

    @property
    def properties(self) -> list[list[tuple[Any, ...]]]:
        """Each event's ``event_properties`` rows in ``PROPERTY_COLUMNS`` order (not the hot path)."""
        out: list[list[tuple[Any, ...]]] = []
        pos = 0
        ids = self.property_ids
        for event_id, row, n in zip(split_uuids(self.event_ids), self.rows, self.counts, strict=True):
            ts = row[ROW_TIME]
            out.append(
                [
                    (PgUUID(ids[16 * k : 16 * k + 16]), event_id, self.names[k], self.values[k], ts)
                    for k in range(pos, pos + n)
                ]
            )
            pos += n
        return out
