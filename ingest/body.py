"""Reading a request body from the ASGI stream under a size limit, gunzipping it on the fly.

The limit is enforced while reading: a body over it is refused at the chunk that crosses the limit, never
buffered whole, and a gzip body's *decompressed* size has the same limit (a gzip bomb is a 413).
"""

from __future__ import annotations

import zlib
from typing import Any

from ingest.errors import BodyTooLarge, CorruptBody, UnsupportedEncoding

__all__ = ["read_body"]


class _Disconnected(CorruptBody):
    pass


async def read_body(
    receive: Any, *, limit: int, content_encoding: str | None, content_length: str | None
) -> bytes:
    """The request body (decompressed), at most ``limit`` bytes; raises a 4xx domain error otherwise."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            announced = 0
        if announced > limit:
            raise BodyTooLarge(f"The request body is over the {limit // 1024} KB limit.")
    gunzip = zlib.decompressobj(wbits=31) if encoding in ("gzip", "x-gzip") else None
    out = bytearray()
    wire = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected("The client disconnected before sending the whole body.")
        chunk: bytes = message.get("body", b"")
        if chunk:
            wire += len(chunk)
            if wire > limit:
                raise BodyTooLarge(f"The request body is over the {limit // 1024} KB limit.")
            if gunzip is None:
                out += chunk
            else:
                try:
                    # max_length caps the output of this step: a bomb never expands past limit + 1.
                    out += gunzip.decompress(chunk, limit + 1 - len(out))
                except zlib.error as exc:
                    raise CorruptBody("The body is not valid gzip.") from exc
                if len(out) > limit or gunzip.unconsumed_tail:
                    raise BodyTooLarge(f"The decompressed body is over the {limit // 1024} KB limit.")
                if gunzip.eof and gunzip.unused_data:
                    raise CorruptBody("The body has data after the end of the gzip stream.")
        if not message.get("more_body", False):
            break
    if gunzip is not None and not gunzip.eof:
        raise CorruptBody("The gzip body is truncated.")
    return bytes(out)
