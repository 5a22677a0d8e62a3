"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and the body when it
sends ``http.response.body``: two ``send()`` system calls (and two packets, with TCP_NODELAY) for every
small JSON answer. On the assignment hot path that second write was about a tenth of the server's CPU
per request (py-spy). Here writes made during one turn of the event loop are joined and written once at
the end of that turn; nothing waits longer than that, and ``close`` writes what is pending first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol"]


class _CoalescingTransport:
    """A transport whose ``write``s within one event-loop turn become a single write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, is_closing ...) is the real transport's.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` writing each response (head and body) with one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn the coalescing wrapper instead of the socket's transport."""
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
