"""Segment messages to rows of ``analytics_events`` and ``event_properties``, validated event by event.

Pure functions, no I/O: the hot path of the collector, written for speed (plain tuples in COPY column
order, C-level UUIDs, no per-event objects beyond what the rows need).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from asyncpg.pgproto.pgproto import UUID as PgUUID

from ingest.guards import checked_ip, time_window

__all__ = [
    "EVENT_COLUMNS",
    "PROPERTY_COLUMNS",
    "VALID_TYPES",
    "Batch",
    "Rejection",
    "RequestInfo",
    "derive_event_id",
    "map_events",
    "parse_timestamp",
]

# COPY column order. created_at is left to its column default (the flush transaction's time).
EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "event_name",
    "event_category",
    "device_id",
    "session_id",
    "ip_address",
    "user_agent",
    "timestamp",
    "source_id",
    "message_id",
    "external_user_id",
    "anonymous_id",
    "received_at",
)
PROPERTY_COLUMNS = ("property_id", "event_id", "property_name", "property_value", "timestamp")
USER_ID_SLOT = 1

VALID_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
# Top-level fields with a column or a dedicated mapping; any other top-level field is kept as "$<name>".
_MAPPED_FIELDS = frozenset(
    {
        "type",
        "event",
        "userId",
        "anonymousId",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "receivedAt",
        "properties",
        "traits",
        "context",
        "integrations",
        "writeKey",
    }
)
_NAME_MAX = 100
_CATEGORY_MAX = 50
_ID_MAX = 255
_UA_MAX = 255
_SESSION_KEYS = ("sessionId", "session_id")
# msgspec rather than orjson: it re-encodes integers beyond 64 bits and any depth its decoder accepted.
_json = msgspec.json.Encoder().encode


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


class _Invalid(Exception):
    """An event-level validation failure; ``args[0]`` is the reason code."""


def derive_event_id(source_id: uuid.UUID, message_id: str) -> PgUUID:
    """uuid5(source_id, messageId): the same message from the same source is always the same event.

    Equal to ``uuid.uuid5(source_id, message_id)``, computed without the stdlib's slower wrapper.
    """
    digest = bytearray(
        hashlib.sha1(source_id.bytes + message_id.encode("utf-8"), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return PgUUID(bytes(digest))


class _PropertyIds:
    """UUIDv7s for property rows: one millisecond prefix per request and a counter from a random start.

    Time-prefixed keys land at the right edge of the primary-key B-tree instead of splitting random pages;
    the 62-bit random start keeps two requests in the same millisecond apart.
    """

    __slots__ = ("counter", "prefix")

    def __init__(self) -> None:
        ms = time.time_ns() // 1_000_000
        rnd = int.from_bytes(os.urandom(10), "big")
        self.prefix = (((ms & 0xFFFF_FFFF_FFFF) << 16) | 0x7000 | ((rnd >> 64) & 0xFFF)).to_bytes(8, "big")
        # Variant bits 10, then 62 random bits; a request never uses more than 2^20 of them.
        self.counter = itertools.count((rnd & ((1 << 62) - 1) & ~((1 << 21) - 1)) | (1 << 63))

    def next(self) -> PgUUID:
        return PgUUID(self.prefix + next(self.counter).to_bytes(8, "big"))


def parse_timestamp(value: Any) -> dt.datetime:
    """An ISO 8601 string to naive UTC; naive inputs are taken as UTC. Raises ``ValueError``."""
    if type(value) is not str:
        raise ValueError("timestamp must be an ISO 8601 string")
    parsed = dt.datetime.fromisoformat(value)
    offset = parsed.utcoffset()
    if offset is None:
        return parsed
    return (parsed - offset).replace(tzinfo=None)


def _text(value: Any) -> str:
    """A property value as text: strings as they are, anything else as JSON."""
    if type(value) is str:
        return value
    return _json(value).decode()


def _identity(value: Any, reason: str) -> str | None:
    """userId / anonymousId / messageId: strings (numbers accepted and stringified), at most 255 chars."""
    if value is None or value == "":
        return None
    if type(value) is str:
        text = value
    elif type(value) is int or type(value) is float:
        text = str(value)
    else:
        raise _Invalid(reason)
    if len(text) > _ID_MAX or "\x00" in text:
        raise _Invalid(reason)
    return text


def _session_id(context: dict[str, Any], properties: dict[str, Any], integrations: dict[str, Any]) -> Any:
    for key in _SESSION_KEYS:
        if context.get(key) is not None:
            return context[key]
    for key in _SESSION_KEYS:
        if properties.get(key) is not None:
            return properties[key]
    # Segment's Amplitude (Actions) destinations carry the SDK's session as integrations.<name>.session_id.
    for value in integrations.values():
        if type(value) is dict and value.get("session_id") is not None:
            return value["session_id"]
    return None


def _short(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if type(value) is str else _text(value)
    return text[:limit]


_BAD_SENT_AT = object()


def _map_one(
    msg: Any,
    forced_type: str | None,
    info: RequestInfo,
    batch_sent_at: Any,
    batch_context: dict[str, Any] | None,
    batch_integrations: dict[str, Any] | None,
    ids: _PropertyIds,
    check_nul: bool,
    oldest: dt.datetime,
    latest: dt.datetime,
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], str]:
    if type(msg) is not dict:
        raise _Invalid("not_an_object")
    call = forced_type or msg.get("type")
    if call not in VALID_TYPES:
        raise _Invalid("invalid_type")
    user_id = _identity(msg.get("userId"), "invalid_user_id")
    anonymous_id = _identity(msg.get("anonymousId"), "invalid_anonymous_id")
    if user_id is None and anonymous_id is None:
        raise _Invalid("missing_user_id_and_anonymous_id")
    message_id = _identity(msg.get("messageId"), "invalid_message_id") or str(uuid.uuid4())

    if call == "track":
        name = msg.get("event")
        if type(name) is not str or not name:
            raise _Invalid("missing_event")
    elif call == "page" or call == "screen":
        name = msg.get("name") or call
        if type(name) is not str:
            raise _Invalid("invalid_name")
    else:
        name = call
    if len(name) > _NAME_MAX:
        raise _Invalid("event_name_too_long")

    properties = msg.get("properties")
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        raise _Invalid("invalid_properties")
    traits = msg.get("traits")
    if traits is None:
        traits = {}
    elif type(traits) is not dict:
        raise _Invalid("invalid_traits")
    context = msg.get("context")
    if context is None:
        context = batch_context or {}
    elif type(context) is not dict:
        raise _Invalid("invalid_context")
    elif batch_context:
        context = {**batch_context, **context}
    integrations = msg.get("integrations")
    if integrations is None:
        integrations = batch_integrations or {}
    elif type(integrations) is not dict:
        raise _Invalid("invalid_integrations")
    elif batch_integrations:
        integrations = {**batch_integrations, **integrations}

    # Segment's skew correction: the client's clock is off by (sentAt - receivedAt), assuming the upload
    # itself was instant, so receivedAt - (sentAt - timestamp) puts the event on the server's clock.
    received = info.received_at
    raw_ts = msg.get("timestamp")
    if raw_ts is None:
        raw_ts = msg.get("originalTimestamp")
    try:
        own_sent = msg.get("sentAt")
        sent = batch_sent_at if own_sent is None else parse_timestamp(own_sent)
        if sent is _BAD_SENT_AT:
            raise ValueError("sentAt")
        if raw_ts is None:
            ts = received
        else:
            ts = parse_timestamp(raw_ts)
            if sent is not None:
                ts = received - (sent - ts)
    except (ValueError, OverflowError) as exc:
        raise _Invalid("invalid_timestamp") from exc
    props: dict[str, str] = {}
    if ts > latest:  # a wrong device clock: keep the event, at the receive time (PostHog's rule)
        ts = received
        props["$original_timestamp"] = _text(raw_ts)
    elif ts < oldest:  # before the retained months: it would corrupt them, or outlive them
        raise _Invalid("timestamp_out_of_range")

    # Inlined (rather than a helper per property): this loop runs for every property of every event.
    for key, value in properties.items():
        if len(key) > _NAME_MAX:
            raise _Invalid("property_name_too_long")
        props[key] = value if type(value) is str else _json(value).decode()
    for key, value in traits.items():
        if key in props:
            key = "traits." + key
        if len(key) > _NAME_MAX:
            raise _Invalid("property_name_too_long")
        props[key] = value if type(value) is str else _json(value).decode()
    ip = None
    ua = None
    for key, value in context.items():
        if key == "ip":  # stored only if it is an address; otherwise the peer's is (as Segment does)
            ip = checked_ip(value) if type(value) is str else None
        elif key == "userAgent" and type(value) is str:
            ua = value
            if len(value) > _UA_MAX:  # the column keeps a prefix; the property keeps it whole
                props["context.userAgent"] = value
        else:
            key = "context." + key
            if len(key) > _NAME_MAX:
                raise _Invalid("property_name_too_long")
            props[key] = value if type(value) is str else _json(value).decode()
    if integrations:
        props["integrations"] = _text(integrations)
    for key in msg.keys() - _MAPPED_FIELDS:
        if not (key == "name" and (call == "page" or call == "screen")):
            name_key = "$" + key
            if len(name_key) > _NAME_MAX:
                raise _Invalid("property_name_too_long")
            props[name_key] = _text(msg[key])

    category = properties.get("category")
    category = _short(category, _CATEGORY_MAX) if category is not None else call
    device = context.get("device")
    device_id = _short(device.get("id"), _ID_MAX) if type(device) is dict else None
    session_id = _short(_session_id(context, properties, integrations), _ID_MAX)
    agent = ua if ua is not None else info.user_agent
    agent = agent[:_UA_MAX] if agent else None
    if check_nul:
        # PostgreSQL text cannot hold NUL; refusing the event beats silently altering it.
        for text in (name, category, device_id, session_id, ip, agent, *props.keys(), *props.values()):
            if text is not None and "\x00" in text:
                raise _Invalid("nul_character")

    candidate = None
    if user_id is not None and len(user_id) == 36:
        try:
            candidate = PgUUID(user_id)
        except ValueError:
            candidate = None
    event_id = derive_event_id(info.source_id, message_id)
    row = (
        event_id,
        candidate,
        name,
        category or call,
        device_id,
        session_id,
        ip if ip is not None else info.peer_ip,
        agent,
        ts,
        info.source_id,
        message_id,
        user_id,
        anonymous_id,
        received,
    )
    prefix = ids.prefix
    counter = ids.counter
    prop_rows = [
        (PgUUID(prefix + next(counter).to_bytes(8, "big")), event_id, k, v, ts) for k, v in props.items()
    ]
    return row, prop_rows, message_id


def _message_id_of(msg: Any) -> str | None:
    if type(msg) is dict:
        value = msg.get("messageId")
        if type(value) is str:
            return value[:_ID_MAX]
        if type(value) is int:
            return str(value)
    return None


def map_events(
    items: list[msgspec.Raw] | list[Any],
    info: RequestInfo,
    *,
    forced_type: str | None = None,
    sent_at: Any = None,
    context: dict[str, Any] | None = None,
    integrations: dict[str, Any] | None = None,
    sizes: list[int] | None = None,
    check_nul: bool = True,
) -> Batch:
    """Validate and map each message; an invalid one is rejected alone, with its reason.

    ``items`` are raw JSON messages (a batch) or already-decoded ones with their encoded ``sizes`` (a
    single call). A message over ``info.max_event_bytes`` is rejected before it is decoded.
    ``check_nul=False`` skips the NUL scan when the caller knows the body has no ``\\u0000`` escape.
    """
    batch = Batch()
    decoder = msgspec.json.Decoder()
    ids = _PropertyIds()
    batch_sent: Any
    try:
        batch_sent = None if sent_at is None else parse_timestamp(sent_at)
    except (ValueError, OverflowError):
        batch_sent = _BAD_SENT_AT
    # The time window, once per request: each event then costs one comparison per side.
    oldest, latest = time_window(info.received_at, info.max_past_months, info.max_future)
    for index, item in enumerate(items):
        msg: Any = None
        try:
            if isinstance(item, msgspec.Raw):
                if len(item) > info.max_event_bytes:
                    raise _Invalid("event_too_large")
                try:
                    msg = decoder.decode(item)
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise _Invalid("invalid_json") from exc
            else:
                msg = item
                if sizes is not None and sizes[index] > info.max_event_bytes:
                    raise _Invalid("event_too_large")
            row, props, message_id = _map_one(
                msg, forced_type, info, batch_sent, context, integrations, ids, check_nul, oldest, latest
            )
        except _Invalid as exc:
            batch.rejected.append(Rejection(index, _message_id_of(msg), str(exc.args[0])))
            continue
        except (msgspec.EncodeError, RecursionError):
            # Defensive: whatever the decoder accepted should re-encode, but a 500 is never the answer.
            batch.rejected.append(Rejection(index, _message_id_of(msg), "unencodable_value"))
            continue
        batch.events.append(row)
        batch.properties.append(props)
        batch.indexes.append(index)
        batch.message_ids.append(message_id)
    return batch
