"""uvicorn's httptools protocol, with one socket write per response and limits on what a client sends.

- One write: uvicorn writes a response's head as soon as the app sends ``http.response.start`` and the
  body when it sends ``http.response.body``: two ``send()`` system calls (and two packets, with
  TCP_NODELAY) for every small JSON answer. On the assignment hot path that second write was about a
  tenth of the server's CPU per request (py-spy). Here writes made during one turn of the event loop are
  joined and written once at the end of that turn; nothing waits longer than that, and ``close`` writes
  what is pending first.
- Limits uvicorn's httptools protocol lacks: the request line and headers (and chunked trailers) are
  capped (431; httptools otherwise buffers a header of any size), a read timeout as nginx's (408;
  otherwise a stalled upload holds a connection slot forever; see ``read_timeout``), and the answers
  uvicorn writes itself (a malformed request, the concurrency limit) carry the same JSON error body as
  the app's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]


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


# A refused connection's lingering close: what the client still sends is dropped up to this much.
_DISCARD_BYTES = 1024 * 1024
_DISCARD_SECONDS = 2.0
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"code": code, "message": message})


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error body, closing the connection."""
    body = _error_body(code, message)
    head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
    return (
        head
        + b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )


async def _unavailable(scope: Any, receive: Any, send: Any) -> None:
    # uvicorn's own answer at its concurrency limit is plain text; this is the API's error shape.
    body = _error_body("server_busy", "The server is at its connection limit; retry shortly.")
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


class _FlowControl(FlowControl):
    """uvicorn's flow control, telling the protocol whenever the app asks for more of the body.

    uvicorn calls ``resume_reading`` each time the app awaits the body (after sending "100 Continue" if
    the client asked for it), which is when waiting on the client starts again.
    """

    def __init__(self, transport: asyncio.Transport, on_resume: Any) -> None:
        super().__init__(transport)
        self._on_resume = on_resume

    def resume_reading(self) -> None:
        super().resume_reading()
        self._on_resume()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing each response with one system call, with the limits above."""

    # Request line plus headers (nginx's default buffers hold 4 x 8 KB; browsers send well under 16 KB).
    max_head_bytes = 64 * 1024
    # The read timeout (nginx's client_header_timeout and client_body_timeout): the request line and
    # headers must arrive within it, counted from the connection's start or, on a keep-alive connection,
    # from the read that left a head unfinished; then the body may pause at most this long between two
    # reads. Time the server holds the request up (reading paused until the app takes the body, a client
    # waiting for "100 Continue") does not count, nor the app's time to answer. The timer exists only
    # while a request is incomplete: one that arrives in one read (almost all of them) never schedules one
    # (call_later + cancel measured 2.3 us, 2 % of a hot request's CPU).
    read_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn the coalescing wrapper instead of the socket's transport; start the read timer."""
        self._head_open = False
        self._request_open = False
        self._trailer_open = False
        self._began = False
        self._head_bytes = 0
        self._discarding = False
        self._discarded = 0
        wrapped = _CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)  # type: ignore[arg-type]
        self.flow = _FlowControl(wrapped, self._reading_resumed)  # type: ignore[arg-type]
        self._read_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.read_timeout, self._read_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the read timer with the connection."""
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, then refuse a head (or chunked trailer) that has grown past ``max_head_bytes``.

        A read counts only if a head or trailer was already open when it arrived and no request began
        inside it (the parser cannot say where in a read a request began), so a head is cut off within
        one read of the limit and a pipelined body is never counted as the next request's head.
        """
        if self._discarding:
            self._discarded += len(data)
            if self._discarded > _DISCARD_BYTES:
                self.transport.close()
            return
        counting = self._head_open or self._trailer_open
        self._began = False
        super().data_received(data)
        if self._discarding or not self._request_open or self.transport.is_closing():
            return
        if counting and (self._head_open or self._trailer_open) and not self._began:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"The request line and headers are over {self.max_head_bytes // 1024} KB.",
                )
                return
        if self._read_timer is None or not self._head_open:
            self._restart_read_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools cannot parse, in the API's JSON error shape."""
        self._refuse(400, "bad_request", msg)

    def on_message_begin(self) -> None:
        """A request starts: its head is open."""
        super().on_message_begin()
        self._request_open = self._head_open = self._began = True
        self._trailer_open = False
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """Close the head; at the concurrency limit answer with the JSON 503 instead of uvicorn's text."""
        self._head_open = False
        limit = self.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().on_headers_complete()
            return
        app = self.app
        self.app, self.limit_concurrency = _unavailable, None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = app, limit

    def on_chunk_header(self) -> None:
        """A chunk of a chunked body: until its data, what follows may be trailers, which httptools
        buffers (joining each value onto itself) like headers, so they count against the same cap."""
        self._trailer_open = True
        self._head_bytes = 0

    def on_body(self, body: bytes) -> None:
        """Body data: no trailer is open."""
        self._trailer_open = False
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The whole request arrived: stop the read timer."""
        self._request_open = self._trailer_open = False
        self._cancel_read_timer()
        super().on_message_complete()

    def _reading_resumed(self) -> None:
        # Until now the server held the request up: an incomplete request gets its full timeout again.
        if self._read_timer is not None:
            self._restart_read_timer()

    def _restart_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

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

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle if self._request_open and not self._head_open else None
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # The server is holding the request up (uvicorn paused reading until the app takes the body
            # or an earlier response ends; the client waits for "100 Continue"): not the client's delay.
            self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)
            return
        if self._earlier_response_unfinished():
            self._close_after_earlier_response()
            return
        if cycle is None or not cycle.response_started:
            self.transport.write(
                error_response(
                    408, "request_timeout", f"The request did not arrive within {self.read_timeout:g} s."
                )
            )
        if cycle is not None:
            # The app's pending read ends with http.disconnect and whatever it sends later is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer and end the connection with a lingering close.

        Closing a socket with unread input makes the kernel send a reset, which can destroy the answer
        before the client reads it; so the answer is written, the sending side shut, and what the client
        still sends is read and dropped (at most ``_DISCARD_BYTES`` or ``_DISCARD_SECONDS``) before closing.
        """
        self._cancel_read_timer()
        if self._earlier_response_unfinished():
            self._close_after_earlier_response()
            return
        self._discarding = True
        self.transport.write(error_response(status, code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_DISCARD_SECONDS, self.transport.close)
        else:
            self.transport.close()
