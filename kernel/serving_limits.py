"""Pieces of the server protocol's limits (``kernel.serving``) that need no protocol state.

- The protocol's own error answers, with the API's JSON error body.
- Flow control that tells the protocol when the server holds a request up (its clocks stop then).
- Where, in a piece of input fed to the parser, a request head (or chunked trailer) that is still open at
  the end of the piece began: so that every byte of a head is counted against the head limit, including
  the read that carried its first byte and reads that also carry the end of an earlier request.
- The table of open connections per client address, one per server.

Every limit, its default and how to change it: ``docs/protocol-limits.md``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import weakref
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import FlowControl

__all__ = [
    "DISCARD_BYTES",
    "DISCARD_SECONDS",
    "ConnectionsByIP",
    "HoldingFlowControl",
    "Network",
    "client_key",
    "connections_by_ip",
    "error_body",
    "error_response",
    "head_start",
    "unavailable",
]

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}
# A refused connection's lingering close: what the client still sends is dropped up to this much.
DISCARD_BYTES = 1024 * 1024
DISCARD_SECONDS = 2.0
# The end of a head (and of a chunked body): the parser (llhttp, strict) accepts no other line ending.
_END = b"\r\n\r\n"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def error_body(code: str, message: str) -> bytes:
    """The API's JSON error body."""
    return orjson.dumps({"code": code, "message": message})


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error body, closing the connection."""
    body = error_body(code, message)
    extra = b"" if retry_after is None else b"retry-after: %d\r\n" % retry_after
    return (
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        + extra
        + b"connection: close\r\n\r\n"
        + body
    )


async def unavailable(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app answering at uvicorn's concurrency limit: its own answer is plain text."""
    body = error_body("server_busy", "The server is at its connection limit; retry shortly.")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HoldingFlowControl(FlowControl):
    """uvicorn's flow control, telling the protocol when reading stops and whenever the app asks for more.

    uvicorn pauses reading while the app has not taken 64 KB of body (or a pipelined request waits), and
    calls ``resume_reading`` each time the app awaits the body (after sending "100 Continue" if the client
    asked for it): the server holds the request up from the one to the other.
    """

    def __init__(self, transport: asyncio.Transport, on_pause: Any, on_resume: Any) -> None:
        super().__init__(transport)
        self._on_pause = on_pause
        self._on_resume = on_resume

    def pause_reading(self) -> None:
        if not self.read_paused:
            self._on_pause()
        super().pause_reading()

    def resume_reading(self) -> None:
        super().resume_reading()
        self._on_resume()


def first_end(data: bytes, lo: int, hi: int, tail: bytes) -> int:
    """Offset in ``data[lo:hi]`` just past the first end of a head, which may have begun in ``tail`` (the
    last bytes before ``lo``); -1 if there is none."""
    i = (tail + data[lo : lo + 3]).find(_END)
    if i >= 0:
        return i + 4 - len(tail)
    i = data.find(_END, lo, hi)
    return -1 if i < 0 else i + 4 - lo


def head_start(
    data: bytes,
    lo: int,
    hi: int,
    *,
    trailer: bool,
    begins: int,
    body: int,
    body_at_last_head: int,
    previous_chunked: bool,
    at_start: str,
    tail: bytes,
) -> int:
    """Offset in the piece ``data[lo:hi]`` where the head (or chunked trailer) still open at its end began.

    From what the parser reported while reading the piece: ``begins`` requests began in it, ``body``
    bytes of body data came in it, ``body_at_last_head`` of them before the last head that ended in it
    (-1: none did), and the request before the open head was chunked (``previous_chunked``). ``at_start``
    is the state when the piece began: "idle" (no request open), "head" (a head open, its last bytes
    ``tail``) or "body". The parser (llhttp) accepts no bare LF, so a head ends at the first CRLF CRLF
    after it began, as does a chunked body; a Content-Length body ends after exactly its length. Where
    these fix the start it is exact (the usual cases, and pipelined requests with Content-Length bodies
    free of CRLF CRLF); otherwise the earliest possible start is returned, so a head is never undercounted.
    """
    last = data.rfind(_END, lo, hi)
    after_last = 0 if last < 0 else last + 4 - lo  # an open head or trailer contains no CRLF CRLF
    start = after_last
    if trailer:
        start = max(after_last, body)  # all body data of the piece came before the trailer
    elif begins == 1 and at_start == "idle":
        start = 0
    elif previous_chunked:
        pass  # the request before ended with its chunked body's CRLF CRLF
    elif body_at_last_head < 0:
        start = body  # the request before was in its body when the piece began: its end came first
    else:
        # The request before ended its head at a CRLF CRLF, then sent ``length`` bytes of body, then the
        # open head began. Its head's end is the ``heads``-th CRLF CRLF of the piece or a later one, and
        # no earlier than ``after_last - length``: the first such is it (or earlier, if a body held one).
        length = body - body_at_last_head
        heads = begins - 1 + (at_start == "head")
        pos = 0
        for _ in range(heads):
            end = first_end(data, lo + pos, hi, tail if pos == 0 and at_start == "head" else b"")
            if end < 0:
                return min(after_last, hi - lo)
            pos += end
        floor = after_last - length
        if pos >= floor:
            start = pos + length
        elif (i := data.find(_END, lo + max(0, floor - 4), hi)) >= 0:
            start = i + 4 - lo + length
    return min(max(start, after_last), hi - lo)


class ConnectionsByIP:
    """Open connections per client address (a key from ``client_key``), for one server process."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, key: str, cap: int) -> bool:
        """Count one more connection from ``key``, unless it has ``cap`` already."""
        count = self._open.get(key, 0)
        if count >= cap:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        """One connection from ``key`` closed; an address with none left has no entry."""
        count = self._open.pop(key, 0) - 1
        if count > 0:
            self._open[key] = count

    def snapshot(self) -> dict[str, int]:
        """A copy of the table (for tests and diagnostics)."""
        return dict(self._open)


_TABLES: weakref.WeakKeyDictionary[object, ConnectionsByIP] = weakref.WeakKeyDictionary()


def connections_by_ip(server_state: object) -> ConnectionsByIP:
    """The table of the server owning ``server_state`` (uvicorn's state shared by its connections)."""
    table = _TABLES.get(server_state)
    if table is None:
        table = _TABLES[server_state] = ConnectionsByIP()
    return table


def client_key(host: str, exempt: tuple[Network, ...], ipv6_prefix: int) -> str | None:
    """The address a connection is counted under; None if uncounted (exempt, or not an IP address).

    An IPv4 address mapped into IPv6 counts as itself; an IPv6 address counts under its ``/ipv6_prefix``
    network, since one host commonly holds a whole /64.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in exempt):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)
