"""The fields of one Segment message that every event has: its call, name and identities, its
sections (properties, traits, context, integrations) and its time on the server's clock.

Called once per event by ``ingest.mapping.events``; each raises ``Invalid`` with the event's reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ingest.mapping.values import BAD_SENT_AT, ID_MAX, Invalid, identity, parse_timestamp, text

__all__ = ["NAME_MAX", "VALID_TYPES", "event_time", "identify", "sections"]

VALID_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
NAME_MAX = 100


def _identities(msg: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """userId, anonymousId and messageId (generated if absent). Each is checked inline when it is a
    plain string (the usual case), else by ``identity``."""
    user_id = msg.get("userId")
    if type(user_id) is not str or not 0 < len(user_id) <= ID_MAX or "\x00" in user_id:
        user_id = identity(user_id, "invalid_user_id")
    anonymous_id = msg.get("anonymousId")
    if type(anonymous_id) is not str or not 0 < len(anonymous_id) <= ID_MAX or "\x00" in anonymous_id:
        anonymous_id = identity(anonymous_id, "invalid_anonymous_id")
    if user_id is None and anonymous_id is None:
        raise Invalid("missing_user_id_and_anonymous_id")
    message_id = msg.get("messageId")
    if type(message_id) is not str or not 0 < len(message_id) <= ID_MAX or "\x00" in message_id:
        message_id = identity(message_id, "invalid_message_id") or str(uuid.uuid4())
    return user_id, anonymous_id, message_id


def identify(msg: dict[str, Any], forced_type: str | None) -> tuple[str, str, str | None, str | None, str]:
    """The call type, event name, userId, anonymousId and messageId (generated if absent)."""
    call = forced_type or msg.get("type")
    if type(call) is not str or call not in VALID_TYPES:  # an object or a list is unhashable
        raise Invalid("invalid_type")
    user_id, anonymous_id, message_id = _identities(msg)
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
    if len(name) > NAME_MAX:
        raise Invalid("event_name_too_long")
    return call, name, user_id, anonymous_id, message_id


def sections(
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


def event_time(
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
