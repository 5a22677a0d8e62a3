"""The ingest routes in the OpenAPI document: Segment's message and batch, read by the collector itself.

The handlers stream the body (gzip included) under a size limit, so Litestar sees no body type; the
shapes below are Segment's HTTP Tracking API as this collector accepts it. Messages are checked one by
one: an invalid one is listed in ``rejected`` of the 200 and the others are stored.
"""

from __future__ import annotations

from typing import Any

from ingest.schemas import IngestResponse
from kernel.openapi import Operation

__all__ = ["operations"]

_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_ID = {"type": "string", "maxLength": 255}
_TYPES = ["track", "identify", "page", "screen", "group", "alias"]


def _message(call: str | None) -> dict[str, Any]:
    """A Segment message; on a single-call route its ``type`` is the route's and may be omitted."""
    properties: dict[str, Any] = {
        "type": {"type": "string", "enum": [call] if call else _TYPES},
        "userId": {"type": ["string", "null"], **_ID},
        "anonymousId": {"type": ["string", "null"], **_ID},
        "messageId": {**_ID, "description": "Deduplicates retries for 7 days."},
        "timestamp": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "event": {"type": "string", "maxLength": 100, "description": "track: the event name."},
        "name": {"type": "string", "maxLength": 100, "description": "page/screen: the name."},
        "groupId": {"type": "string", "description": "group: the group."},
        "previousId": {"type": "string", "description": "alias: the previous id."},
        "properties": _OBJECT,
        "traits": _OBJECT,
        "context": _OBJECT,
        "integrations": _OBJECT,
        "writeKey": {"type": "string", "description": "The write key, when not sent as HTTP Basic."},
    }
    return {
        "type": "object",
        "description": "A Segment message; `userId` or `anonymousId` is required, at most 32 KB.",
        "properties": properties,
        "required": [] if call else ["type"],
        "additionalProperties": True,
    }


_BATCH: dict[str, Any] = {
    "type": "object",
    "description": "A Segment batch; top-level `context` and `integrations` merge into each message.",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "maxItems": 2500, "items": _message(None)},
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
        "context": _OBJECT,
        "integrations": _OBJECT,
    },
    "additionalProperties": True,
}

# Every ingest route: the write key (HTTP Basic, or ``writeKey`` in the body); 400 for a body that is not
# JSON or when every event is rejected, 422 for one that is not a batch, 413 over 500 KB or 2,500 events,
# 503 when nothing could be committed (Segment SDKs retry); a message sent again is a duplicate, not a 409.
_BATCH_SUMMARY = "Send a batch of Segment messages (up to 2,500, 500 KB)"
_INGEST: dict[str, Any] = {"response": IngestResponse, "security": ("writeKey",), "without": (409,)}

operations: dict[str, Operation] = {
    "POST /v1/batch": Operation(summary=_BATCH_SUMMARY, body=_BATCH, **_INGEST),
    "POST /v1/b": Operation(summary=_BATCH_SUMMARY, body=_BATCH, **_INGEST),
    **{f"POST /v1/{call}": Operation(body=_message(call), **_INGEST) for call in _TYPES},
}
