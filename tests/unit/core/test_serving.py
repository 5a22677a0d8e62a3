"""One socket write per response: the coalescing transport under uvicorn's protocol."""

from __future__ import annotations

import asyncio
from typing import Any

from core_api.serving import _CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def test_writes_in_one_loop_turn_become_one() -> None:
    raw = FakeTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b'{"a":1}')
    assert raw.writes == []
    assert t.get_write_buffer_size() == 26
    await asyncio.sleep(0)
    assert raw.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
    t.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]


async def test_close_writes_what_is_pending_first() -> None:
    raw = FakeTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"head")
    t.write(b"body")
    t.close()
    assert raw.writes == [b"headbody"]
    assert raw.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to write
    assert raw.writes == [b"headbody"]


async def test_abort_drops_pending_and_the_rest_is_delegated() -> None:
    raw = FakeTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"lost")
    t.abort()
    await asyncio.sleep(0)
    assert raw.writes == []
    assert raw.aborted
    t.pause_reading()
    assert raw.paused
    assert t.get_extra_info("sockname") == ("127.0.0.1", 8000)


async def test_nothing_is_written_to_a_closing_transport() -> None:
    raw = FakeTransport()
    t = _CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"late")
    raw.closed = True  # the peer went away before the end of the turn
    await asyncio.sleep(0)
    assert raw.writes == []
