"""uvicorn's httptools protocol, with one socket write per response and limits on what a client sends.

- One write: uvicorn writes a response's head as soon as the app sends ``http.response.start`` and the
  body when it sends ``http.response.body``: two ``send()`` system calls (and two packets, with
  TCP_NODELAY) for every small JSON answer. On the assignment hot path that second write was about a
  tenth of the server's CPU per request (py-spy). Here writes made during one turn of the event loop are
  joined and written once at the end of that turn; nothing waits longer than that, and ``close`` writes
  what is pending first.
- Limits uvicorn's httptools protocol lacks, each a class attribute below (defaults, reasons and how to
  change them: ``docs/protocol-limits.md``): the head's size (431), total deadlines for a head and a body
  and the longest pause in a body (408), connections per client address (429). The answers uvicorn writes
  itself (a malformed request, the concurrency limit) carry the same JSON error body as the app's.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kernel.serving_limits import (
    DISCARD_BYTES,
    DISCARD_SECONDS,
    HoldingFlowControl,
    Network,
    client_key,
    connections_by_ip,
    error_response,
    head_start,
    unavailable,
)
from kernel.settings import get_settings

__all__ = ["CoalescingHttpToolsProtocol", "error_response"]

# The protocol's limits (the class attributes of the same names in lower case), from the process's
# settings: read once when a server process loads this module, which every uvicorn worker does itself.
_settings = get_settings()
MAX_HEAD_BYTES = _settings.server_limits.max_head_bytes
HEAD_TIMEOUT = _settings.server_limits.head_timeout
READ_TIMEOUT = _settings.server_limits.read_timeout
BODY_TIMEOUT = _settings.server_limits.body_timeout
MAX_CONNECTIONS_PER_IP = _settings.server_limits.max_connections_per_ip
# Connections from a configured proxy are not counted: every client behind it shares its address.
PER_IP_EXEMPT: tuple[Network, ...] = _settings.trusted_proxies

# Pending bytes written at once rather than at the end of the loop turn: past this, joining saves nothing
# and the real transport must see the data for its flow control (pause_writing) to reach uvicorn.
_FLUSH_AT = 64 * 1024


class _CoalescingTransport:
    """A transport whose ``write``s within one event-loop turn become a single write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= _FLUSH_AT:
            # A streamed response would otherwise pile up here unseen by flow control.
            self._flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if not self._transport.is_closing() and not self._eof:
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._eof = True  # later writes are dropped, as after close (the socket would raise)
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, is_closing ...) is the real transport's.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing each response with one system call, with the limits above."""

    max_head_bytes = MAX_HEAD_BYTES  # request line and headers as sent, CRLFs included
    head_timeout = HEAD_TIMEOUT  # total, from the connection's start or the head's first byte
    read_timeout = READ_TIMEOUT  # the longest pause between two reads of a body
    body_timeout = BODY_TIMEOUT  # total, from the end of the head, whatever Content-Length says
    max_connections_per_ip = MAX_CONNECTIONS_PER_IP  # open at once from one address
    per_ip_exempt = PER_IP_EXEMPT  # networks whose connections are not counted
    ipv6_prefix = 64  # an IPv6 client's address is its /64 network
    # A timer exists only while a request is incomplete: one arriving in one read (almost all) schedules
    # none (call_later + cancel measured 2.3 us, 2 % of a hot request's CPU). It is armed for the earliest
    # deadline and re-armed when it fires early, so a read of a body costs a clock reading, no reschedule.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn the coalescing wrapper; refuse an address over its cap; start the head's clock."""
        self._head_open = self._request_open = self._trailer_open = self._chunked = False
        self._prev_chunked = self._discarding = False
        self._region_bytes = self._discarded = self._begins = self._chunks = self._body = 0
        self._body_at_head = -1
        self._tail = b""
        self._ip_key: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = self._last_read = 0.0
        self._head_deadline: float | None = None
        self._body_deadline: float | None = None
        self._held_since: float | None = None
        wrapped = _CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)  # type: ignore[arg-type]
        self.flow = HoldingFlowControl(wrapped, self._hold, self._reading_resumed)  # type: ignore[arg-type]
        client = self.client
        key = None if client is None else client_key(client[0], self.per_ip_exempt, self.ipv6_prefix)
        if key is None or connections_by_ip(self.server_state).acquire(key, self.max_connections_per_ip):
            self._ip_key = key
            self._head_deadline = self.loop.time() + self.head_timeout
            self._arm(self._head_deadline)
            return
        self.connections.discard(self)  # a refused connection takes no slot of uvicorn's limit
        message = f"This address has {self.max_connections_per_ip} connections open; close one first."
        self._refuse(429, "too_many_connections", message)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer and give back the address's connection slot."""
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        """The connection passes to a WebSocket protocol, which never reports its end here."""
        self._release()
        self._discarding = True  # nothing more of this read is parsed here
        super().handle_websocket_upgrade()

    def _release(self) -> None:
        self._cancel_timer()
        if self._ip_key is not None:
            connections_by_ip(self.server_state).release(self._ip_key)
            self._ip_key = None

    def data_received(self, data: bytes) -> None:
        """Feed the parser, in pieces no longer than the head limit has room for, checking after each.

        A head that ends inside a piece is at most as long as the room, so one over the limit is still
        open when its piece ends, and is refused there before it reaches the app. A read shorter than the
        room (almost every read) is one piece.
        """
        if self._discarding:
            self._discarded += len(data)
            if self._discarded > DISCARD_BYTES:
                self.transport.close()
            return
        size = len(data)
        if size <= self.max_head_bytes - (self._region_bytes if self._head_open or self._trailer_open else 0):
            self._feed(data, 0, size)
        else:
            lo = 0
            while lo < size and not (self._discarding or self.transport.is_closing()):
                room = self.max_head_bytes - (
                    self._region_bytes if self._head_open or self._trailer_open else 0
                )
                self._feed(data, lo, min(size, lo + room))
                lo += room
        if self._request_open or self._begins == 0:
            self._start_clocks()

    def _feed(self, data: bytes, lo: int, hi: int) -> None:
        head, trailer, request = self._head_open, self._trailer_open, self._request_open
        self._begins = self._chunks = self._body = 0
        self._body_at_head = -1
        super().data_received(data if hi - lo == len(data) else memoryview(data)[lo:hi])  # type: ignore[arg-type]
        if not (self._head_open or self._trailer_open) or self._discarding or self.transport.is_closing():
            return
        if self._begins == 0 and (head if self._head_open else trailer and self._chunks == 0):
            self._region_bytes += hi - lo  # the head (or trailer) open before the piece goes on
            self._tail = (self._tail + data[max(lo, hi - 3) : hi])[-3:]
        else:
            start = head_start(
                data,
                lo,
                hi,
                trailer=self._trailer_open,
                begins=self._begins,
                body=self._body,
                body_at_last_head=self._body_at_head,
                previous_chunked=self._prev_chunked,
                at_start="idle" if not request else "head" if head else "body",
                tail=self._tail,
            )
            self._region_bytes = hi - lo - start
            self._tail = data[max(lo + start, hi - 3) : hi]
        if self._region_bytes >= self.max_head_bytes:  # still open at the limit: it goes over
            limit = self.max_head_bytes // 1024
            self._refuse(431, "headers_too_large", f"The request line and headers are over {limit} KB.")

    def _start_clocks(self) -> None:
        """After a read: a request left incomplete has a deadline running (set once, by its first read)."""
        if self._discarding or self.transport.is_closing():
            return
        if self._request_open:
            now = self._last_read = self.loop.time()
            if self._head_open:
                if self._head_deadline is None:
                    self._head_deadline = now + self.head_timeout
            elif self._body_deadline is None:
                self._body_deadline = now + self.body_timeout
            self._arm(self._due())
        elif self._head_deadline is None:
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                # Blank lines before the next head, or the end of a body answered early: the read
                # cancelled uvicorn's keep-alive timer, and the next head's clock starts now.
                self._head_deadline = self.loop.time() + self.head_timeout
                self._arm(self._head_deadline)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools cannot parse, in the API's JSON error shape."""
        self._refuse(400, "bad_request", msg)

    def on_message_begin(self) -> None:
        """A request starts: its head is open."""
        super().on_message_begin()
        self._request_open = self._head_open = True
        self._trailer_open = False
        self._begins += 1
        self._prev_chunked, self._chunked = self._chunked, False

    def on_headers_complete(self) -> None:
        """Close the head; at the concurrency limit answer with the JSON 503 instead of uvicorn's text."""
        self._head_open = False
        self._head_deadline = None
        self._body_at_head = self._body
        if self.expect_100_continue:
            self._hold()  # the client waits for "100 Continue", which the app's first read sends
        limit = self.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().on_headers_complete()
            return
        app = self.app
        self.app, self.limit_concurrency = unavailable, None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = app, limit

    def on_chunk_header(self) -> None:
        """A chunk of a chunked body: until its data, what follows may be trailers, which httptools
        buffers (joining each value onto itself) like headers, so they count against the same cap."""
        self._trailer_open = self._chunked = True
        self._chunks += 1

    def on_body(self, body: bytes) -> None:
        """Body data: no trailer is open."""
        self._trailer_open = False
        self._body += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The whole request arrived: stop its clocks."""
        self._request_open = self._trailer_open = False
        self._body_deadline = None
        self._cancel_timer()
        super().on_message_complete()

    def _hold(self) -> None:
        # The server holds the request up (reading paused, or the client waits for "100 Continue"): the
        # client's clocks stop until it asks for the body again.
        if self._held_since is None:
            self._held_since = self.loop.time()

    def _reading_resumed(self) -> None:
        # The app asks for (more of) the body: an incomplete request gets its full read timeout again and
        # its total deadlines move by the time it was held up.
        held = self._held_since
        if held is None:
            if self._timer is not None:
                self._last_read = self.loop.time()
            return
        self._held_since = None
        now = self._last_read = self.loop.time()
        if self._head_deadline is not None:
            self._head_deadline += now - held
        if self._body_deadline is not None:
            self._body_deadline += now - held
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._arm(self._due())

    def _due(self) -> float:
        """When the client's time runs out (inf: no deadline runs now)."""
        if self._head_open or not self._request_open:
            return math.inf if self._head_deadline is None else self._head_deadline
        total = math.inf if self._body_deadline is None else self._body_deadline
        return min(self._last_read + self.read_timeout, total)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            if self._timer_at <= due:
                return  # it fires first and re-arms for the rest
            self._timer.cancel()
        if due != math.inf:
            self._timer_at = due
            self._timer = self.loop.call_at(due, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _earlier_response_unfinished(self) -> bool:
        # The cycle is the open request's own only once its head is complete; otherwise (a new head, or
        # bytes that never began a request) it is an earlier request's, and so is any queued one's.
        cycle = self.cycle
        own = self._request_open and not self._head_open
        return cycle is not None and not cycle.response_complete and (not own or bool(self.pipeline))

    def _close_after_earlier_response(self) -> None:
        # An answer written now would land before or inside the earlier response: let it (and any queued
        # request) finish, then uvicorn closes the connection; input from now on is dropped.
        self._discarding = True
        if self.cycle is not None:
            self.cycle.keep_alive = False
        for queued, _app in self.pipeline:
            queued.keep_alive = False

    def _timed_out(self) -> None:
        self._timer = None
        if self._discarding or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle if self._request_open and not self._head_open else None
        if self._held_since is not None or self.flow.read_paused:
            self._arm(now + self.read_timeout)  # the server holds the request up: no client limit runs
            return
        if now < (due := self._due()):
            self._arm(due)
            return
        if self._head_open or not self._request_open:
            message = f"The request line and headers did not arrive within {self.head_timeout:g} s."
        elif due == self._body_deadline:
            message = f"The request body did not arrive within {self.body_timeout:g} s."
        else:
            message = f"The client sent nothing for {self.read_timeout:g} s in the middle of a request."
        if self._earlier_response_unfinished():
            self._close_after_earlier_response()
            return
        if cycle is not None:
            # The app's pending read ends with http.disconnect and whatever it sends later is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self._refuse(408, "request_timeout", message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer and end the connection with a lingering close.

        Closing a socket with unread input makes the kernel send a reset, which can destroy the answer
        before the client reads it; so the answer is written, the sending side shut, and what the client
        still sends is read and dropped (at most ``DISCARD_BYTES`` or ``DISCARD_SECONDS``) before closing.
        """
        self._cancel_timer()
        if self._earlier_response_unfinished():
            self._close_after_earlier_response()
            return
        self._discarding = True
        retry = 1 if status == 429 else None
        self.transport.write(error_response(status, code, message, retry))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(DISCARD_SECONDS, self.transport.close)
        else:
            self.transport.close()
