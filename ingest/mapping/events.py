"""Segment messages to rows of ``analytics_events`` and ``event_properties``, validated event by event.

Pure functions, no I/O: the hot path of the collector, written for speed. An event becomes one compact
row tuple and its properties two flat columns of the request's ``Batch`` (no object per property row);
ledger keys (uuid5 of the messageId), event ids and property ids (UUIDv7) are made for the whole
request in vectorised steps at the end. One event is mapped by ``_map_one`` in a few steps, each a
function called once per event (``ingest.mapping.message`` has the first ones); the loops over an
event's properties stay inside those steps (a call per property would cost more than the work it does).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from asyncpg.pgproto.pgproto import UUID as PgUUID

from ingest.guards import checked_ip, time_window
from ingest.mapping.batch import ROW_MESSAGE_ID, Batch, Rejection, RequestInfo
from ingest.mapping.message import NAME_MAX, VALID_TYPES, event_time, identify, sections
from ingest.mapping.values import (
    BAD_SENT_AT,
    ID_MAX,
    Invalid,
    json,
    parse_timestamp,
    split_uuids,
    text,
    time_ordered_ids,
    uuid5_bytes,
)

__all__ = ["VALID_TYPES", "map_events"]

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
_NAME_MAX = NAME_MAX
_decoder = msgspec.json.Decoder()
_CATEGORY_MAX = 50
# Reasons an event can be rejected for after its properties' names would have been checked.
_AFTER_NAMES = frozenset({"nul_character", "unencodable_value"})
_UA_MAX = 255


def _own_properties(
    properties: dict[str, Any], traits: dict[str, Any], props: dict[str, str], check_names: bool
) -> dict[str, str]:
    """properties, then traits (``traits.<name>`` where a property has the name), added to ``props``.

    Without ``check_names`` the lengths of the properties' own names are not checked here: the request's
    names are checked at once after the fast pass (``map_events``), which maps again with the check if one
    is too long.
    """
    if properties and not props and (not check_names or max(map(len, properties)) <= _NAME_MAX):
        # The usual case, in one comprehension: every name is short, and nothing is in props yet.
        props = {k: v if type(v) is str else json(v).decode() for k, v in properties.items()}
    else:
        # Inlined (rather than a helper per property): these loops run for every property of every event.
        for key, value in properties.items():
            if len(key) > _NAME_MAX:
                raise Invalid("property_name_too_long")
            props[key] = value if type(value) is str else json(value).decode()
    if traits:
        for key, value in traits.items():
            if key in props:
                key = "traits." + key
            if len(key) > _NAME_MAX:
                raise Invalid("property_name_too_long")
            props[key] = value if type(value) is str else json(value).decode()
    return props


def _context_properties(
    msg: dict[str, Any],
    call: str,
    context: dict[str, Any],
    integrations: dict[str, Any],
    props: dict[str, str],
) -> tuple[str | None, str | None]:
    """context as ``context.<name>``, integrations, unmapped top-level fields as ``$<name>`` into
    ``props``; returns the context's checked ip and its userAgent."""
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
                raise Invalid("property_name_too_long")
            props[key] = value if type(value) is str else json(value).decode()
    if integrations:
        props["integrations"] = text(integrations)
    # Most messages have no unmapped field: that is tested without building the difference set.
    if not _MAPPED_FIELDS.issuperset(msg):
        _unmapped_fields(msg, call, props)
    return ip, ua


def _unmapped_fields(msg: dict[str, Any], call: str, props: dict[str, str]) -> None:
    """Top-level fields with no column or mapping, as ``$<name>`` into ``props``."""
    for key in msg.keys() - _MAPPED_FIELDS:
        if not (key == "name" and (call == "page" or call == "screen")):
            name_key = "$" + key
            if len(name_key) > _NAME_MAX:
                raise Invalid("property_name_too_long")
            props[name_key] = text(msg[key])


def _descriptors(
    call: str, properties: dict[str, Any], context: dict[str, Any], integrations: dict[str, Any]
) -> tuple[str, str | None, str | None]:
    """The category, device id and session id columns, each cut to its column's length."""
    category = properties.get("category")
    category = call if category is None else text(category)[:_CATEGORY_MAX]
    device = context.get("device")
    device_id = None
    if type(device) is dict and (value := device.get("id")) is not None:
        device_id = text(value)[:ID_MAX]
    # The session: context first, then properties, each under either spelling.
    session = context.get("sessionId")
    if session is None:
        session = context.get("session_id")
    if session is None:
        session = properties.get("sessionId")
    if session is None:
        session = properties.get("session_id")
    if session is None:
        # Segment's Amplitude (Actions) destinations carry the SDK's session as integrations.<name>.session_id.
        for value in integrations.values():
            if type(value) is dict and value.get("session_id") is not None:
                session = value["session_id"]
                break
    return category, device_id, None if session is None else text(session)[:ID_MAX]


def _refuse_nul(texts: tuple[str | None, ...], props: dict[str, str]) -> None:
    """Reject the event if a column's text or a property's name or value holds NUL.

    PostgreSQL text cannot hold NUL; refusing the event beats silently altering it.
    """
    for value in (*texts, *props.keys(), *props.values()):
        if value is not None and "\x00" in value:
            raise Invalid("nul_character")


class _Request:
    """What every event of one request shares, computed once per request rather than once per event."""

    __slots__ = (
        "agent",
        "check_names",
        "check_nul",
        "context",
        "forced_type",
        "integrations",
        "peer_ip",
        "received",
        "sent",
        "window",
    )

    def __init__(
        self,
        info: RequestInfo,
        forced_type: str | None,
        sent_at: Any,
        context: dict[str, Any] | None,
        integrations: dict[str, Any] | None,
        check_nul: bool,
        check_names: bool,
    ) -> None:
        self.check_names = check_names
        self.forced_type = forced_type
        self.context = context
        self.integrations = integrations
        self.check_nul = check_nul
        self.received = info.received_at
        self.peer_ip = info.peer_ip
        # The request's User-Agent, cut to the column, for the events whose context names none.
        self.agent = info.user_agent[:_UA_MAX] if info.user_agent else None
        try:
            self.sent = None if sent_at is None else parse_timestamp(sent_at)
        except (ValueError, OverflowError):
            self.sent = BAD_SENT_AT
        # The time window: each event then costs one comparison per side.
        self.window = time_window(info.received_at, info.max_past_months, info.max_future)


def _map_one(msg: Any, req: _Request) -> tuple[tuple[Any, ...], dict[str, str]]:
    """One message to its compact event row (``Batch.rows``) and its properties; raises ``Invalid``."""
    if type(msg) is not dict:
        raise Invalid("not_an_object")
    call, name, user_id, anonymous_id, message_id = identify(msg, req.forced_type)
    properties, traits, context, integrations = sections(msg, req.context, req.integrations)
    received = req.received
    props: dict[str, str] = {}
    ts = event_time(msg, received, req.sent, req.window, props)
    props = _own_properties(properties, traits, props, req.check_names)
    ip, ua = _context_properties(msg, call, context, integrations, props)
    category, device_id, session_id = _descriptors(call, properties, context, integrations)
    agent = req.agent if ua is None else (ua[:_UA_MAX] or None)
    if req.check_nul:
        _refuse_nul((name, category, device_id, session_id, ip, agent), props)
    candidate = None
    if user_id is not None and len(user_id) == 36:
        try:
            candidate = PgUUID(user_id)
        except ValueError:
            candidate = None
    # In Batch.rows order: EVENT_COLUMNS without event_id, source_id and received_at
    # (ingest.mapping.columns checks the order against the model at import).
    row = (
        candidate,
        name,
        category or call,
        device_id,
        session_id,
        ip if ip is not None else req.peer_ip,
        agent,
        ts,
        message_id,
        user_id,
        anonymous_id,
    )
    return row, props


def _message_id_of(msg: Any) -> str | None:
    if type(msg) is dict:
        value = msg.get("messageId")
        if type(value) is str:
            return value[:ID_MAX]
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

    The first pass leaves the properties' own name lengths unchecked and checks every name of the
    request at once at the end (one C-level pass instead of one per event). Only if a name is too long,
    or an event was rejected for a reason that the check would have come before, is the request mapped
    again with the check in every event: each rejection then has the same reason as always.
    """
    args = (forced_type, sent_at, context, integrations, check_nul)
    batch = _map_pass(items, info, sizes, _Request(info, *args, check_names=False))
    if (batch.names and max(map(len, batch.names)) > _NAME_MAX) or any(
        r.reason in _AFTER_NAMES for r in batch.rejected
    ):
        batch = _map_pass(items, info, sizes, _Request(info, *args, check_names=True))
    return batch


def _map_pass(
    items: list[msgspec.Raw] | list[Any], info: RequestInfo, sizes: list[int] | None, req: _Request
) -> Batch:
    """One pass of ``map_events`` over the request's messages."""
    batch = Batch(info.source_id, info.received_at)
    decode = _decoder.decode
    limit = info.max_event_bytes
    # The ledger keys, uuid5(source_id, messageId): the namespace hashed once, each event's hash a copy.
    namespace = hashlib.sha1(info.source_id.bytes, usedforsecurity=False).copy
    digests: list[bytes] = []
    rows, names, values, counts = batch.rows, batch.names, batch.values, batch.counts
    indexes, message_ids = batch.indexes, batch.message_ids
    for index, item in enumerate(items):
        msg: Any = None
        try:
            if isinstance(item, msgspec.Raw):
                if len(item) > limit:
                    raise Invalid("event_too_large")
                try:
                    msg = decode(item)
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise Invalid("invalid_json") from exc
            else:
                msg = item
                if sizes is not None and sizes[index] > limit:
                    raise Invalid("event_too_large")
            row, props = _map_one(msg, req)
        except Invalid as exc:
            batch.rejected.append(Rejection(index, _message_id_of(msg), str(exc.args[0])))
            continue
        except (msgspec.EncodeError, RecursionError):
            # Defensive: whatever the decoder accepted should re-encode, but a 500 is never the answer.
            batch.rejected.append(Rejection(index, _message_id_of(msg), "unencodable_value"))
            continue
        rows.append(row)
        sha1 = namespace()
        sha1.update(row[ROW_MESSAGE_ID].encode())
        digests.append(sha1.digest())
        # The property rows as two flat columns: C-level extends, no tuple or id object per property.
        names.extend(props)
        values.extend(props.values())
        counts.append(len(props))
        indexes.append(index)
        message_ids.append(row[ROW_MESSAGE_ID])
    _finish(batch, digests)
    return batch


def _finish(batch: Batch, digests: list[bytes]) -> None:
    """The batch's ledger keys (from its events' SHA-1 digests), event ids and property ids, each in one
    step."""
    batch.keys = split_uuids(uuid5_bytes(digests))
    batch.event_ids = time_ordered_ids(len(digests))
    batch.property_ids = time_ordered_ids(len(batch.names))
