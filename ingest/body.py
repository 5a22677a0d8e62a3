"""Reading a Segment request body: the kernel's limited reader, gunzipping on the fly.

The limit is enforced while reading (``kernel.body``): a body over it is refused at the chunk that
crosses the limit, never buffered whole, and a gzip body's *decompressed* size has the same limit (a
gzip bomb is a 413 after inflating at most ``limit + 1`` bytes).
"""

from __future__ import annotations

import zlib
from typing import Any

from ingest.errors import BodyTooLarge, CorruptBody, UnsupportedEncoding
from kernel.body import read_body as read_limited

__all__ = ["read_body"]


class _Gunzip:
    """Inflates a gzip body chunk by chunk, refusing it once the output passes ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflated = 0
        self._stream = zlib.decompressobj(wbits=31)

    def __call__(self, chunk: bytes) -> bytes:
        stream = self._stream
        try:
            # max_length caps the output of this step: a bomb never expands past limit + 1.
            out = stream.decompress(chunk, self._limit + 1 - self._inflated)
        except zlib.error as exc:
            raise CorruptBody(f"is not valid gzip ({exc})") from exc
        self._inflated += len(out)
        if self._inflated > self._limit or stream.unconsumed_tail:
            raise BodyTooLarge(self._limit, subject="The decompressed request body")
        if stream.eof and stream.unused_data:
            raise CorruptBody("has data after the end of the gzip stream")
        return out

    def finish(self) -> None:
        if not self._stream.eof:
            raise CorruptBody("is a truncated gzip stream")


async def read_body(
    receive: Any, *, limit: int, content_encoding: str | None, content_length: str | None
) -> bytes:
    """The request body (decompressed), at most ``limit`` bytes; raises a 4xx domain error otherwise."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise UnsupportedEncoding(encoding)
    gunzip = _Gunzip(limit) if encoding in ("gzip", "x-gzip") else None
    body = await read_limited(
        receive,
        limit=limit,
        content_length=content_length,
        too_large=lambda: BodyTooLarge(limit),
        each=gunzip,
    )
    if gunzip is not None:
        gunzip.finish()
    return body
