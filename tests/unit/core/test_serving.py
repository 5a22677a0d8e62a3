"""One socket write per response: the coalescing transport under uvicorn's protocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn

from bench.kit import free_port
from kernel.serving import CoalescingHttpToolsProtocol, _CoalescingTransport


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


# --- The protocol's limits, on a real uvicorn server over a real socket ------------------------------


class _SmallLimits(CoalescingHttpToolsProtocol):
    max_head_bytes = 8 * 1024
    head_timeout = 0.5
    read_timeout = 0.5
    body_timeout = 5.0


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b'{"read":%d}' % size
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _uvicorn(
    http: type[CoalescingHttpToolsProtocol] = _SmallLimits,
    limit_concurrency: int | None = None,
    app: Any = _echo_app,
) -> AsyncIterator[uvicorn.Server]:
    """A real uvicorn server with protocol ``http`` on 127.0.0.1, started and (at the end) stopped."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        http=http,
        lifespan="off",
        log_level="critical",
        access_log=False,
        limit_concurrency=limit_concurrency,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def _server(
    limit_concurrency: int | None = None,
    app: Any = _echo_app,
    http: type[CoalescingHttpToolsProtocol] = _SmallLimits,
) -> AsyncIterator[int]:
    """The port of a running ``_uvicorn`` server."""
    async with _uvicorn(http, limit_concurrency, app) as server:
        yield server.config.port


async def _exchange(port: int, *chunks: bytes, pause: float = 0.0) -> bytes:
    """Send ``chunks`` (``pause`` seconds apart) and read until the server closes or 5 s pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError:
                break  # the server stopped reading: its answer is already on the way
            await asyncio.sleep(pause)
        out = b""
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
            out += chunk
        return out
    finally:
        writer.close()


def _status_and_json(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


async def test_oversized_headers_are_431_json_and_never_buffered_whole() -> None:
    async with _server() as port:
        start = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: "
        # 512 KB of header sent in 64 KB pieces: refused long before the end, with the API's error shape
        # (what the client still sends is read and dropped, so the answer is not lost to a reset).
        raw = await _exchange(port, start, *([b"a" * 65536] * 8))
        status, body = _status_and_json(raw)
        assert status == 431
        assert body["code"] == "headers_too_large"
        assert body["message"]
        # Many small headers count the same way.
        many = b"".join(b"x-h%d: v\r\n" % i for i in range(5000))
        status, body = _status_and_json(await _exchange(port, start + b"v\r\n", many[:4000], many[4000:]))
        assert status == 431


async def test_a_large_body_is_not_mistaken_for_a_large_head() -> None:
    async with _server() as port:
        body = b"x" * 200_000
        one = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        two = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        raw = await _exchange(port, one + two[:20], two[20:], pause=0.05)  # pipelined, split mid-head
        assert raw.count(b"HTTP/1.1 200") == 2, raw[:300]
        assert b'{"read":200000}' in raw
        assert b'{"read":2}' in raw


async def test_malformed_request_is_400_json() -> None:
    async with _server() as port:
        status, body = _status_and_json(await _exchange(port, b"GET / HTTP/1.1\r\nbad header\x01\r\n\r\n"))
        assert status == 400
        assert body["code"] == "bad_request"
        assert body["message"]


async def test_a_stalled_request_is_408_json_and_frees_its_connection() -> None:
    async with _server() as port:
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc"
        status, body = _status_and_json(await _exchange(port, head))  # 7 bytes never come
        assert status == 408
        assert body["code"] == "request_timeout"
        # A head that never ends is timed out the same way.
        status, _ = _status_and_json(await _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n"))
        assert status == 408
        # So is a connection that never sends a request.
        status, _ = _status_and_json(await _exchange(port))
        assert status == 408
        # Requests that arrive whole are answered however long a keep-alive connection lives.
        get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
        last = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        ok = await _exchange(port, get, get, get, last, pause=0.3)  # 1.2 s against a 0.5 s timeout
        assert ok.count(b"HTTP/1.1 200") == 4, ok


async def test_concurrency_limit_answers_503_json() -> None:
    async with _server(limit_concurrency=1) as port:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")  # holds the only slot
        await writer.drain()
        await asyncio.sleep(0.05)
        try:
            raw = await _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            status, body = _status_and_json(raw)
            assert status == 503
            assert body["code"] == "server_busy"
            assert b"retry-after: 1" in raw.lower()
        finally:
            writer.close()


async def test_a_pipelined_body_is_not_counted_as_the_next_head() -> None:
    async with _server() as port:
        body = b"x" * 20_000  # over the 8 KB head limit
        a = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        b = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        # One read starts inside A's head, carries A's body and ends inside B's head.
        raw = await _exchange(port, a[:5], a[5:] + b[:5], b[5:], pause=0.05)
        assert raw.count(b"HTTP/1.1 200") == 2, raw[:300]


async def test_chunked_trailers_count_against_the_head_limit() -> None:
    async with _server() as port:
        head = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        trailer = b"x-t: " + b"a" * 100_000  # httptools would buffer it whole
        status, body = _status_and_json(await _exchange(port, head, trailer[:50_000], trailer[50_000:]))
        assert status == 431
        assert body["code"] == "headers_too_large"


async def _slow_reader(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(1.0)  # e.g. auth and a query before the body is read: longer than read_timeout
    await _echo_app(scope, receive, send)


async def test_no_408_while_the_server_holds_the_request_up() -> None:
    # The app takes 1.0 s, 0.8 s and 1.2 s before reading: around the 0.5 s timeout and its multiples.
    for delay in (1.0, 0.8, 1.2):
        await _held_up_requests(delay)


async def _held_up_requests(delay: float) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(delay)
        await _echo_app(scope, receive, send)

    async with _server(app=slow) as port:
        # uvicorn stops reading an unread 1 MB body at 64 KB: the client is not the one stalling.
        body = b"x" * (1 << 20)
        req = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        raw = await _exchange(port, req + body)
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        assert b'{"read":1048576}' in raw
        # A client waiting for "100 Continue" is not stalling either.
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 100")
            writer.write(b"hello")
            rest = await asyncio.wait_for(reader.read(), 5)
            assert rest.startswith(b"HTTP/1.1 200"), rest
        finally:
            writer.close()


async def test_a_streamed_response_waits_for_a_slow_reader() -> None:
    sent = 0

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"x" * (1 << 20), "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b""})

    async with _server(app=stream) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        try:
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            await asyncio.sleep(0.5)  # the client reads nothing yet
            # Flow control held the app back instead of the server buffering the 64 MB.
            assert sent < 16, sent
            while await reader.read(1 << 20):
                pass
            assert sent == 64
        finally:
            writer.close()


async def test_a_refusal_never_lands_before_an_earlier_pipelined_response() -> None:
    async with _server(app=_slow_reader) as port:
        first = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
        for bad in (b"GET / HTTP/1.1\r\nbad header\x01\r\n\r\n", b"\x01GET / HTTP/1.1\r\n\r\n"):
            raw = await _exchange(port, first + bad)
            # The first request is answered in full, then the connection closes; nothing is spliced in.
            assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
            assert raw.count(b"HTTP/1.1") == 1, raw
