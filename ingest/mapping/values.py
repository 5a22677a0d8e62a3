"""Field-level pieces of the mapping: identities, timestamps, property text and generated ids.

Pure functions, no I/O, called once or a few times per event (never per property: the property loops
in ``ingest.mapping.events`` inline what they need).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from asyncpg.pgproto.pgproto import UUID as PgUUID

__all__ = [
    "BAD_SENT_AT",
    "ID_MAX",
    "Invalid",
    "identity",
    "json",
    "message_key",
    "message_keys",
    "parse_timestamp",
    "split_uuids",
    "text",
    "time_ordered_ids",
    "uuid5_bytes",
]

ID_MAX = 255
# msgspec rather than orjson: it re-encodes integers beyond 64 bits and any depth its decoder accepted.
json = msgspec.json.Encoder().encode
# A batch-level sentAt that did not parse: an error only for the events that would use it.
BAD_SENT_AT: Any = object()
# uuid5 over a 128-bit integer: clear the version nibble (byte 6) and variant bits (byte 8), then set them.
_UUID5_KEEP = ~((0xF0 << 72) | (0xC0 << 56)) & ((1 << 128) - 1)
_UUID5_SET = (0x50 << 72) | (0x80 << 56)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)
_AWARE_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Invalid(Exception):
    """An event-level validation failure; ``args[0]`` is the reason code."""


def message_keys(source_bytes: bytes) -> Callable[[str], PgUUID]:
    """uuid5 of one source (its 16 bytes) and a messageId, as a function of the messageId: the message's
    key in the exactly-once ledger.

    The namespace is hashed once (per request): each event then copies that SHA-1 state and feeds it
    only its messageId, rather than hashing the concatenation anew.
    """
    copy = hashlib.sha1(source_bytes, usedforsecurity=False).copy
    keep = _UUID5_KEEP
    set_bits = _UUID5_SET

    def key(message_id: str) -> PgUUID:
        h = copy()
        h.update(message_id.encode("utf-8"))
        # The version and variant bits set on the first 16 bytes as one integer: cheaper than a bytearray.
        return PgUUID(((int.from_bytes(h.digest()[:16], "big") & keep) | set_bits).to_bytes(16, "big"))

    return key


def uuid5_bytes(digests: list[bytes]) -> bytes:
    """The uuid5s whose SHA-1 digests (of namespace + name) are ``digests``, 16 bytes each.

    The version and variant bits are set on all of them in one vectorised step: per event, the mapping
    only hashes (``hashlib``'s copy of the pre-hashed namespace, fed the messageId).
    """
    if not digests:
        return b""
    block = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 20)[:, :16].copy()
    block[:, 6] = (block[:, 6] & 0x0F) | 0x50
    block[:, 8] = (block[:, 8] & 0x3F) | 0x80
    return block.tobytes()


def split_uuids(block: bytes) -> list[PgUUID]:
    """The UUIDs of a block of 16-byte ids (``uuid5_bytes``, ``time_ordered_ids``), as asyncpg's UUID."""
    return [PgUUID(block[k : k + 16]) for k in range(0, len(block), 16)]


def message_key(source_id: uuid.UUID, message_id: str) -> PgUUID:
    """uuid5(source_id, messageId): the ledger's key of a message (the same message from the same source
    always has the same key, whatever its event id).

    Equal to ``uuid.uuid5(source_id, message_id)``, computed without the stdlib's slower wrapper.
    """
    return message_keys(source_id.bytes)(message_id)


def time_ordered_ids(count: int) -> bytes:
    """``count`` UUIDv7s for one request's events or property rows, 16 bytes each: a millisecond prefix
    and a counter from a random start, built in one vectorised step (never one Python object per id).

    Time-prefixed keys land at the right edge of a B-tree (the tables' primary keys, the properties'
    event_id index) instead of at random pages, so an insertion touches the few pages already in cache
    however large the index grows; the 62-bit random start keeps two requests in the same millisecond
    apart.
    """
    ms = time.time_ns() // 1_000_000
    rnd = int.from_bytes(os.urandom(10), "big")
    prefix = ((ms & 0xFFFF_FFFF_FFFF) << 16) | 0x7000 | ((rnd >> 64) & 0xFFF)
    # Variant bits 10, then 62 random bits; the low 21 bits start at 0, and a request never has 2^21
    # properties (its body is at most a few hundred KB), so the counter never carries into the variant.
    start = (rnd & ((1 << 62) - 1) & ~((1 << 21) - 1)) | (1 << 63)
    block = np.empty((count, 2), dtype=">u8")
    block[:, 0] = prefix
    block[:, 1] = np.arange(count, dtype=np.uint64) + np.uint64(start)
    return block.tobytes()


def parse_timestamp(value: Any) -> dt.datetime:
    """An ISO 8601 string to naive UTC; naive inputs are taken as UTC. Raises ``ValueError``."""
    if type(value) is not str:
        raise ValueError("timestamp must be an ISO 8601 string")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed
    # Through the epoch: the same instant as (parsed - offset).replace(tzinfo=None), exactly, at a fifth
    # of the cost (datetime.replace with a keyword argument is slow in C; this runs for every event).
    return _NAIVE_EPOCH + (parsed - _AWARE_EPOCH)


def text(value: Any) -> str:
    """A property value as text: strings as they are, anything else as JSON."""
    if type(value) is str:
        return value
    return json(value).decode()


def identity(value: Any, reason: str) -> str | None:
    """userId / anonymousId / messageId: strings (numbers accepted and stringified), at most 255 chars."""
    if value is None or value == "":
        return None
    if type(value) is str:
        result = value
    elif type(value) is int or type(value) is float:
        result = str(value)
    else:
        raise Invalid(reason)
    if len(result) > ID_MAX or "\x00" in result:
        raise Invalid(reason)
    return result
