"""Segment messages to rows of ``analytics_events`` and ``event_properties``, validated event by event.

Pure functions, no I/O: the hot path of the collector, written for speed (plain tuples in COPY column
order, C-level UUIDs, no per-event objects beyond what the rows need). One event is mapped by
``_map_one`` in a few steps, each a function called once per event; the loops over an event's
properties stay inside those steps (a call per property would cost more than the work it does).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from asyncpg.pgproto.pgproto import UUID as PgUUID

from ingest.guards import checked_ip, time_window
from ingest.mapping.batch import Batch, Rejection, RequestInfo
from ingest.mapping.values import (
    BAD_SENT_AT,
    ID_MAX,
    Invalid,
    PropertyIds,
    event_ids,
    identity,
    json,
    parse_timestamp,
    text,
)

__all__ = ["VALID_TYPES", "map_events"]

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
_UA_MAX = 255


def _identify(msg: dict[str, Any], forced_type: str | None) -> tuple[str, str, str | None, str | None, str]:
    """The call type, event name, userId, anonymousId and messageId (generated if absent)."""
    call = forced_type or msg.get("type")
    if type(call) is not str or call not in VALID_TYPES:  # an object or a list is unhashable
        raise Invalid("invalid_type")
    user_id = identity(msg.get("userId"), "invalid_user_id")
    anonymous_id = identity(msg.get("anonymousId"), "invalid_anonymous_id")
    if user_id is None and anonymous_id is None:
        raise Invalid("missing_user_id_and_anonymous_id")
    message_id = identity(msg.get("messageId"), "invalid_message_id") or str(uuid.uuid4())
    if call == "track":
        name = msg.get("event")
        if type(name) is not str or not name:
            raise Invalid("missing_event")
    elif call == "page" or call == "screen":
        name = msg.get("name") or call
        if type(name) is not str:
            raise Invalid("invalid_name")
    else:
        name = call
    if len(name) > _NAME_MAX:
        raise Invalid("event_name_too_long")
    return call, name, user_id, anonymous_id, message_id


def _sections(
    msg: dict[str, Any], batch_context: dict[str, Any] | None, batch_integrations: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """properties, traits, context and integrations (the latter two over the batch's), each a dict."""
    properties = msg.get("properties")
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        raise Invalid("invalid_properties")
    traits = msg.get("traits")
    if traits is None:
        traits = {}
    elif type(traits) is not dict:
        raise Invalid("invalid_traits")
    context = msg.get("context")
    if context is None:
        context = batch_context or {}
    elif type(context) is not dict:
        raise Invalid("invalid_context")
    elif batch_context:
        context = {**batch_context, **context}
    integrations = msg.get("integrations")
    if integrations is None:
        integrations = batch_integrations or {}
    elif type(integrations) is not dict:
        raise Invalid("invalid_integrations")
    elif batch_integrations:
        integrations = {**batch_integrations, **integrations}
    return properties, traits, context, integrations


def _event_time(
    msg: dict[str, Any],
    received: dt.datetime,
    batch_sent_at: Any,
    window: tuple[dt.datetime, dt.datetime],
    props: dict[str, str],
) -> dt.datetime:
    """The event's time on the server's clock; a time in the future is kept in ``props`` instead."""
    # Segment's skew correction: the client's clock is off by (sentAt - receivedAt), assuming the upload
    # itself was instant, so receivedAt - (sentAt - timestamp) puts the event on the server's clock.
    raw_ts = msg.get("timestamp")
    if raw_ts is None:
        raw_ts = msg.get("originalTimestamp")
    try:
        own_sent = msg.get("sentAt")
        sent = batch_sent_at if own_sent is None else parse_timestamp(own_sent)
        if sent is BAD_SENT_AT:
            raise ValueError("sentAt")
        if raw_ts is None:
            ts = received
        else:
            ts = parse_timestamp(raw_ts)
            if sent is not None:
                ts = received - (sent - ts)
    except (ValueError, OverflowError) as exc:
        raise Invalid("invalid_timestamp") from exc
    if ts > window[1]:  # a wrong device clock: keep the event, at the receive time (PostHog's rule)
        props["$original_timestamp"] = text(raw_ts)
        return received
    if ts < window[0]:  # before the retained months: it would corrupt them, or outlive them
        raise Invalid("timestamp_out_of_range")
    return ts


def _own_properties(properties: dict[str, Any], traits: dict[str, Any], props: dict[str, str]) -> None:
    """properties, then traits (``traits.<name>`` where a property has the name) into ``props``."""
    # Inlined (rather than a helper per property): these loops run for every property of every event.
    for key, value in properties.items():
        if len(key) > _NAME_MAX:
            raise Invalid("property_name_too_long")
        props[key] = value if type(value) is str else json(value).decode()
    for key, value in traits.items():
        if key in props:
            key = "traits." + key
        if len(key) > _NAME_MAX:
            raise Invalid("property_name_too_long")
        props[key] = value if type(value) is str else json(value).decode()


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
        "check_nul",
        "context",
        "event_id",
        "forced_type",
        "integrations",
        "next_value",
        "pack",
        "peer_ip",
        "prefix",
        "received",
        "sent",
        "source_id",
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
    ) -> None:
        self.forced_type = forced_type
        self.context = context
        self.integrations = integrations
        self.check_nul = check_nul
        self.received = info.received_at
        self.peer_ip = info.peer_ip
        self.source_id = info.source_id
        # The request's User-Agent, cut to the column, for the events whose context names none.
        self.agent = info.user_agent[:_UA_MAX] if info.user_agent else None
        self.event_id = event_ids(info.source_id.bytes)
        ids = PropertyIds()
        self.prefix, self.pack, self.next_value = ids.prefix, ids.pack, ids.next_value
        try:
            self.sent = None if sent_at is None else parse_timestamp(sent_at)
        except (ValueError, OverflowError):
            self.sent = BAD_SENT_AT
        # The time window: each event then costs one comparison per side.
        self.window = time_window(info.received_at, info.max_past_months, info.max_future)


def _map_one(msg: Any, req: _Request) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], str]:
    """One message to its event row, its property rows and its messageId; raises ``Invalid``."""
    if type(msg) is not dict:
        raise Invalid("not_an_object")
    call, name, user_id, anonymous_id, message_id = _identify(msg, req.forced_type)
    properties, traits, context, integrations = _sections(msg, req.context, req.integrations)
    received = req.received
    props: dict[str, str] = {}
    ts = _event_time(msg, received, req.sent, req.window, props)
    _own_properties(properties, traits, props)
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
    eid = req.event_id(message_id)
    # In EVENT_COLUMNS order (ingest.mapping.columns checks it against the model at import).
    row = (
        eid,
        candidate,
        name,
        category or call,
        device_id,
        session_id,
        ip if ip is not None else req.peer_ip,
        agent,
        ts,
        req.source_id,
        message_id,
        user_id,
        anonymous_id,
        received,
    )
    pack, prefix, next_value = req.pack, req.prefix, req.next_value
    prop_rows = [(PgUUID(pack(prefix, next_value())), eid, k, v, ts) for k, v in props.items()]
    return row, prop_rows, message_id


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
    """
    batch = Batch()
    decoder = msgspec.json.Decoder()
    req = _Request(info, forced_type, sent_at, context, integrations, check_nul)
    for index, item in enumerate(items):
        msg: Any = None
        try:
            if isinstance(item, msgspec.Raw):
                if len(item) > info.max_event_bytes:
                    raise Invalid("event_too_large")
                try:
                    msg = decoder.decode(item)
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise Invalid("invalid_json") from exc
            else:
                msg = item
                if sizes is not None and sizes[index] > info.max_event_bytes:
                    raise Invalid("event_too_large")
            row, props, message_id = _map_one(msg, req)
        except Invalid as exc:
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
