"""Reading a request body from the ASGI stream under a size limit enforced while reading.

A body whose ``Content-Length`` announces more than the limit is refused before any of it is read, and
one that arrives without (or despite) that header is refused at the chunk that crosses the limit, so
it is never buffered whole. Used by the fast path and by ingest (which inflates gzip chunk by chunk
through ``each``). ``decode_json`` decodes a body read by hand with the same answers as Litestar's
``data`` parameters (400 ``invalid_json``, 422 ``validation_error``: ``kernel.problems``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from kernel.errors import BadRequestError
from kernel.problems import body_error, not_json

__all__ = ["ClientDisconnected", "decode_json", "read_body"]

T = TypeVar("T")


class ClientDisconnected(BadRequestError):
    """The client went away before its whole body arrived: nobody is left to read an answer."""

    code = "client_disconnected"


async def read_body(
    receive: Any,
    *,
    limit: int,
    content_length: str | bytes | None,
    too_large: Callable[[], Exception],
    each: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The body, at most ``limit`` bytes on the wire; raises ``too_large()`` past it.

    ``each``, if given, maps every received chunk to what is kept (and may raise to refuse the body).
    """
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            announced = 0  # a garbled header is not trusted either way; the bytes are counted instead
        if announced > limit:
            raise too_large()
    parts: list[bytes] = []
    wire = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("The client disconnected before sending the whole body.")
        chunk: bytes = message.get("body", b"")
        if chunk:
            wire += len(chunk)
            if wire > limit:
                raise too_large()
            parts.append(chunk if each is None else each(chunk))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def decode_json(body: bytes, type_: type[T]) -> T:
    """``body`` decoded into ``type_``: 400 ``invalid_json`` if it is not a JSON object, 422 if a value
    does not fit (``details`` name the fields)."""
    try:
        value = msgspec.json.decode(body, type=type_)
        if not body.isascii():
            # A typed decode skips unknown fields unread, invalid UTF-8 included: not JSON either.
            body.decode()
        return value
    except msgspec.ValidationError as exc:
        raise body_error(exc, body, type_) from exc
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise not_json(body, exc) from exc
