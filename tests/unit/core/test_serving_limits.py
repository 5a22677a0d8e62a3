"""The protocol's limits on what one client may take: the whole head counted, total deadlines for a
head and a body, and a cap on connections per client address (``docs/protocol-limits.md``)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import string
from collections.abc import Callable
from typing import Any

import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from uvicorn.server import ServerState

from kernel.serving import CoalescingHttpToolsProtocol
from kernel.serving_limits import ConnectionsByIP, client_key, connections_by_ip
from tests.unit.core.test_serving import (
    FakeTransport,
    _echo_app,
    _exchange,
    _server,
    _SmallLimits,
    _status_and_json,
    _uvicorn,
)

# --- 1. The whole head counts, the read that carried its first byte included --------------------------


class _DefaultHeadLimit(_SmallLimits):
    max_head_bytes = CoalescingHttpToolsProtocol.max_head_bytes  # the 64 KB default


def _head(size: int) -> bytes:
    """A GET head of exactly ``size`` bytes on the wire, CRLFs included (connection: close)."""
    start = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-pad: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def _one_write(port: int, data: bytes) -> bytes:
    """Send ``data`` with one ``sendall`` on a plain socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(1 << 20):
            out += chunk
        return out


async def test_a_head_sent_in_one_write_is_counted_whole() -> None:
    assert _DefaultHeadLimit.max_head_bytes == 64 * 1024
    async with _server(http=_DefaultHeadLimit) as port:
        status, body = _status_and_json(await asyncio.to_thread(_one_write, port, _head(210 * 1024)))
        assert status == 431
        assert body["code"] == "headers_too_large"
        assert body["message"]
        # The limit is exact: 64 KB to the byte passes, one byte more does not.
        ok = await asyncio.to_thread(_one_write, port, _head(64 * 1024))
        assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
        status, _ = _status_and_json(await asyncio.to_thread(_one_write, port, _head(64 * 1024 + 1)))
        assert status == 431


async def test_a_head_after_a_pipelined_body_in_the_same_read_is_counted_exactly() -> None:
    async with _server() as port:  # 8 KB heads
        body = b"x" * 5000
        post = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        ok = await _exchange(port, post + _head(8 * 1024))
        assert ok.count(b"HTTP/1.1 200") == 2, ok[:300]
        # One byte over: the first request is answered, then the connection closes (an answer to the
        # second would land inside the first's).
        over = await _exchange(port, post + _head(8 * 1024 + 1))
        assert over.startswith(b"HTTP/1.1 200"), over[:300]
        assert over.count(b"HTTP/1.1 ") == 1, over


class _Parsing(CoalescingHttpToolsProtocol):
    """The protocol with the app left out: what is counted while parsing, nothing else."""

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        pass


class _Transport(FakeTransport):
    def resume_reading(self) -> None:
        self.paused = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


_TOKEN = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=8).map(str.encode)
_VALUE = st.text(alphabet=string.ascii_letters + " ;=/", max_size=60).map(str.encode)


@st.composite
def _requests(draw: Any) -> tuple[bytes, list[tuple[int, int]], bool]:
    """Pipelined requests: the stream, where each head begins and ends, and whether counting is exact."""
    stream, heads, exact = b"", [], True
    for _ in range(draw(st.integers(1, 5))):
        path = b"/" + draw(_TOKEN)
        fields = b"".join(b"%s: %s\r\n" % (n, v) for n, v in draw(st.lists(st.tuples(_TOKEN, _VALUE))))
        kind = draw(st.sampled_from(["get", "length", "chunked"]))
        if kind == "get":
            head, rest = b"GET %s HTTP/1.1\r\n%s\r\n" % (path, fields), b""
        elif kind == "length":
            body = draw(st.binary(max_size=300) | st.sampled_from([b"\r\n\r\n", b"a\r\n\r\nb"]))
            exact = exact and b"\r\n\r\n" not in body
            head = b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n" % (path, fields, len(body))
            rest = body
        else:
            exact = False
            chunks = draw(st.lists(st.binary(min_size=1, max_size=50), max_size=3))
            trailers = b"x-t: %s\r\n" % draw(_VALUE) if draw(st.booleans()) else b""
            head = b"POST %s HTTP/1.1\r\n%stransfer-encoding: chunked\r\n\r\n" % (path, fields)
            rest = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailers + b"\r\n"
        heads.append((len(stream), len(stream) + len(head)))
        stream += head + rest
    return stream, heads, exact


_CONFIG: list[uvicorn.Config] = []


@given(_requests(), st.lists(st.integers(1, 1 << 16), max_size=12), st.booleans())
def test_the_open_head_is_counted_from_its_first_byte(
    requests: tuple[bytes, list[tuple[int, int]], bool], cuts: list[int], small: bool
) -> None:
    """However the stream is cut into reads, the bytes counted for the head open after a read are those
    it has on the wire: exactly, unless framing cannot tell (chunked bodies, bodies holding CRLF CRLF),
    where they are never fewer. A limit just above the longest head splits reads into pieces too."""
    stream, heads, exact = requests
    if not _CONFIG:
        _CONFIG.append(uvicorn.Config(_echo_app, lifespan="off", log_level="critical"))
    loop = asyncio.new_event_loop()
    try:
        proto = _Parsing(config=_CONFIG[0], server_state=ServerState(), app_state={}, _loop=loop)
        longest = max(end - start for start, end in heads)
        proto.max_head_bytes = longest if small and exact else 1 << 20
        proto.connection_made(_Transport())  # type: ignore[arg-type]
        bounds = [*sorted({c % len(stream) for c in cuts} - {0}), len(stream)]
        at = 0
        for end in bounds:
            proto.data_received(stream[at:end])
            at = end
            assert not proto._discarding, "refused a head within the limit"
            open_heads = [start for start, stop in heads if start < at < stop]
            assert proto._head_open == bool(open_heads)
            if open_heads:
                true = at - open_heads[0]
                assert proto._region_bytes == true if exact else proto._region_bytes >= true
    finally:
        loop.close()


# --- 2. Total deadlines: a trickled head or body is answered 408 when its time is up ------------------


class _Deadlines(_SmallLimits):
    head_timeout = 1.0
    read_timeout = 0.3
    body_timeout = 1.0


async def _trickle(port: int, first: bytes, rest: bytes, every: float) -> tuple[float, bytes]:
    """Send ``first``, then ``rest`` a byte every ``every`` s (for at most 4 s) until the server answers.

    Returns the answer and when its first byte came, in seconds after the connection opened.
    """
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = loop.time()
    try:
        writer.write(first)
        answer = asyncio.ensure_future(reader.read(1 << 16))
        for i in range(len(rest)):
            done, _ = await asyncio.wait({answer}, timeout=every)
            if done or loop.time() - began > 4.0:
                break
            writer.write(rest[i : i + 1])
        out = await asyncio.wait_for(answer, 10)
        at = loop.time() - began
        while chunk := await asyncio.wait_for(reader.read(1 << 16), 5):
            out += chunk
        return at, out
    finally:
        writer.close()


async def test_a_trickled_head_is_408_at_its_total_deadline() -> None:
    async with _server(http=_Deadlines) as port:
        head = b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-h: v\r\n" * 100 + b"\r\n"
        # A byte every 0.1 s: never a pause of read_timeout (0.3 s), but the head needs 8 s.
        at, raw = await _trickle(port, b"", head, every=0.1)
        status, body = _status_and_json(raw)
        assert status == 408
        assert body["code"] == "request_timeout"
        assert "headers" in body["message"]
        assert 0.9 <= at < 1.8, at  # head_timeout (1 s) from the connection's start


async def _answers_at_once(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":  # without reading the body (as a route refusing it would)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_bytes_after_a_response_start_the_next_heads_clock() -> None:
    # Each case reads a response, then sends what completes no request yet cancels uvicorn's keep-alive
    # timer: a blank line (which may precede a request), or the rest of a body the app answered early.
    cases = (
        (_echo_app, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", b'{"read":0}', b"\r\n"),
        (_answers_at_once, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabcde", b"ok", b"fghij"),
    )
    loop = asyncio.get_running_loop()
    for app, request, answer, then in cases:
        async with _server(http=_Deadlines, app=app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                await asyncio.wait_for(reader.readuntil(answer), 5)
                writer.write(then)
                began = loop.time()
                status, _ = _status_and_json(await asyncio.wait_for(reader.read(), 5))
                assert status == 408
                assert 0.9 <= loop.time() - began < 1.8  # head_timeout, not forever
            finally:
                writer.close()


async def _slow_echo(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(1.5)  # longer than body_timeout before the body is read
    await _echo_app(scope, receive, send)


async def test_a_trickled_body_is_408_at_its_total_deadline() -> None:
    async with _server(http=_Deadlines) as port:
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
        at, raw = await _trickle(port, head, b"x" * 1000, every=0.1)  # 100 s at this pace
        status, body = _status_and_json(raw)
        assert status == 408
        assert body["code"] == "request_timeout"
        assert "body" in body["message"]
        assert 0.9 <= at < 1.8, at  # body_timeout (1 s) from the end of the head
    # Time the server holds the body up does not count against the deadline.
    async with _server(http=_Deadlines, app=_slow_echo) as port:
        body = b"x" * (1 << 20)  # uvicorn stops reading it at 64 KB until the app asks
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        raw = await _exchange(port, head + body)
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        head = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 100")
            writer.write(b"hello")
            assert (await asyncio.wait_for(reader.readuntil(b'{"read":5}'), 5)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()


# --- 3. Connections per client address -----------------------------------------------------------------


class _TwoPerAddress(_SmallLimits):
    head_timeout = 10.0  # idle connections stay open for the test
    max_connections_per_ip = 2
    per_ip_exempt = ()


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in 5 s")


async def test_connections_over_the_per_address_cap_are_429_json() -> None:
    get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    async with _uvicorn(http=_TwoPerAddress) as server:
        port = server.config.port
        table = connections_by_ip(server.server_state)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await _until(lambda: table.snapshot() == {"127.0.0.1": 2})
        for _ in range(3):  # refused connections take no slot
            raw = await _exchange(port, get)
            status, body = _status_and_json(raw)
            assert status == 429
            assert body["code"] == "too_many_connections"
            assert b"retry-after: 1" in raw.lower()
        assert table.snapshot() == {"127.0.0.1": 2}
        held.pop()[1].close()
        await _until(lambda: table.snapshot() == {"127.0.0.1": 1})
        # A freed slot is taken again, and connections ending every which way give theirs back.
        close = get.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
        for request, status in (
            (close, 200),
            (b"GET / HTTP/1.1\r\nbad\x01\r\n\r\n", 400),
            (_head(9000), 431),
        ):
            raw = await _exchange(port, request)
            assert raw.startswith(b"HTTP/1.1 %d" % status), raw[:200]
            await _until(lambda: table.snapshot() == {"127.0.0.1": 1})
        # The last held connection is still open when the server stops.
    assert table.snapshot() == {}
    held[0][1].close()


def test_connections_are_counted_per_client_address() -> None:
    exempt = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_key("203.0.113.5", exempt, 64) == "203.0.113.5"
    assert client_key("::ffff:203.0.113.5", exempt, 64) == "203.0.113.5"
    assert client_key("2001:db8:1:2:aaaa::1", exempt, 64) == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:bbbb::2", exempt, 64) == "2001:db8:1:2::/64"
    assert client_key("10.1.2.3", exempt, 64) is None
    assert client_key("not-an-address", exempt, 64) is None
    # By default 64 per address, loopback included; only CORP_ASTRO_TRUSTED_PROXIES are exempt.
    default = CoalescingHttpToolsProtocol
    assert default.max_connections_per_ip == 64
    assert client_key("127.0.0.1", default.per_ip_exempt, 64) == "127.0.0.1"
    table = ConnectionsByIP()
    assert table.acquire("a", 2)
    assert table.acquire("a", 2)
    assert not table.acquire("a", 2)
    table.release("a")
    table.release("a")
    assert table.snapshot() == {}
    table.release("a")  # never a negative or zero entry
    assert table.snapshot() == {}
