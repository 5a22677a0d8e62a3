"""The benchmarks' HTTP client (``bench.load``, used by the ingest benchmark) against a scripted server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench import load
from bench.load import HttpClient


class Scripted:
    """A server on 127.0.0.1 answering each request with the next canned response of its connection.

    ``close_after`` closes a connection after that many responses (an idle keep-alive timeout).
    """

    def __init__(self, responses: list[bytes], close_after: int | None = None) -> None:
        self.responses = responses
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.responses[(len(self.requests) - 1) % len(self.responses)])
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    s = Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-type: text/plain\r\n\r\nhello"])
    s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    yield s
    s.server.close()
    await s.server.wait_closed()


async def test_keep_alive_request_and_headers(scripted: Scripted) -> None:
    client = HttpClient(scripted.port)
    for _ in range(3):
        answer = await client.request("POST", "/v1/batch", {"Authorization": "Basic x"}, b"{}")
        assert answer == (200, b"hello")
    client.close()
    assert scripted.connections == 1
    first = scripted.requests[0]
    assert first.startswith(b"POST /v1/batch HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic x\r\n" in first
    assert first.endswith(b"\r\n\r\n{}")


async def test_reconnects_once_after_an_idle_close(scripted: Scripted) -> None:
    scripted.close_after = 1
    client = await HttpClient.open(scripted.port)
    assert await client.request("GET", "/a", {}) == (200, b"hello")
    await asyncio.sleep(0.05)  # the server has closed the connection by now
    assert await client.request("GET", "/b", {}) == (200, b"hello")
    client.close()
    assert scripted.connections == 2


async def test_a_fresh_connection_closed_unanswered_is_an_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        client = HttpClient(int(server.sockets[0].getsockname()[1]))
        with pytest.raises(ConnectionError):
            await client.request("GET", "/", {})
    finally:
        server.close()
        await server.wait_closed()


async def test_chunked_and_connection_close(scripted: Scripted) -> None:
    scripted.responses = [
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    ]
    client = HttpClient(scripted.port)
    assert await client.request("GET", "/", {}) == (503, b"abcde")
    # The server said it closes: the next request opens a new connection without a failed attempt.
    assert await client.request("GET", "/", {}) == (503, b"abcde")
    client.close()
    assert scripted.connections == 2


async def test_drivers(scripted: Scripted) -> None:
    clients = [HttpClient(scripted.port) for _ in range(3)]
    seen: list[tuple[int, float]] = []

    async def one(worker: int, item: int) -> int:
        status, _ = await clients[worker].request("POST", "/", {}, str(item).encode())
        return status

    elapsed = await load.closed_loop(3, iter(range(10)), one, lambda s, t: seen.append((s, t)))
    assert len(seen) == 10
    assert {s for s, _ in seen} == {200}
    assert elapsed > 0
    for c in clients:
        c.close()

    statuses: list[int] = []

    async def send(client: HttpClient) -> int:
        return (await client.request("GET", "/", {}))[0]

    await load.open_loop(scripted.port, 200.0, 0.05, send, lambda s, t: statuses.append(s))
    assert statuses == [200] * 10
