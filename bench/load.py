"""The one HTTP load generator of the benchmarks: a keep-alive HTTP/1.1 client and two drivers.

- ``HttpClient``: one connection speaking just enough HTTP/1.1 (Content-Length or chunked responses),
  parsing each response head in one pass: the load generator shares the machine's CPUs with the server
  under test, so it must never be the bottleneck. A connection the server closed while it sat idle
  (uvicorn's keep-alive timeout is 5 s) is reopened once and the request sent again, as an HTTP client
  library would.
- ``closed_loop``: K workers, each sending its next request as soon as its previous one is answered
  (the peak a server sustains).
- ``open_loop``: requests started at a fixed rate whatever the responses (latency under a given load,
  overload), each on an idle connection or a new one, as many independent clients would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TypeVar

__all__ = ["HttpClient", "closed_loop", "for_seconds", "open_loop"]

T = TypeVar("T")
R = TypeVar("R")

_HEAD_END = b"\r\n\r\n"


class HttpClient:
    """One keep-alive HTTP/1.1 connection to ``host:port``, opened on first use (or by ``open``)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Whether the open connection has answered a request: only then is an EOF an idle close.
        self._used = False

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> HttpClient:
        """A client whose connection is already open (so the first request's latency has no connect)."""
        client = cls(port, host)
        await client.connect()
        return client

    async def connect(self) -> None:
        """Open a new connection (closing the current one, if any)."""
        self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._used = False

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and return the response's status and body.

        Raises ``ConnectionError`` if a fresh connection is closed before answering, and
        ``asyncio.IncompleteReadError`` if a response is cut off.
        """
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        message = (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode() + b"\r\n" + body
        if self._writer is None:
            await self.connect()
        raw = await self._send(message)
        if raw is None:
            # The server closed the connection while it sat idle: send again once on a new one.
            await self.connect()
            raw = await self._send(message)
        assert raw is not None  # a fresh connection closed unanswered raises instead
        return await self._response(raw)

    async def _send(self, message: bytes) -> bytes | None:
        """Write ``message`` and read the response head; None if the connection was closed unanswered."""
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(message)
        try:
            return await self._reader.readuntil(_HEAD_END)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
        except ConnectionResetError:
            pass
        if not self._used:
            self.close()
            raise ConnectionError("the server closed the connection")
        return None

    async def _response(self, raw: bytes) -> tuple[int, bytes]:
        """The status and body of the response whose head is ``raw``, in one pass over the head."""
        reader = self._reader
        assert reader is not None
        status = int(raw[9:12])
        lowered = raw.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lowered.index(b"\r\n", at + 2)
            data = await reader.readexactly(int(raw[at + 17 : end]))
        elif b"chunked" in lowered:
            data = b""
            while (size := int((await reader.readline()).strip(), 16)) > 0:
                data += await reader.readexactly(size)
                await reader.readline()
            await reader.readline()
        else:
            data = b""
        self._used = True
        at = lowered.find(b"\r\nconnection:")
        if at >= 0 and b"close" in lowered[at : lowered.index(b"\r\n", at + 2)]:
            self.close()
        return status, data


def for_seconds(seconds: float, items: Iterable[T]) -> Iterator[T]:
    """``items`` until ``seconds`` have passed (checked as each item is taken)."""
    deadline = time.perf_counter() + seconds
    return itertools.takewhile(lambda _: time.perf_counter() < deadline, items)


async def closed_loop(
    workers: int,
    items: Iterator[T],
    one: Callable[[int, T], Awaitable[R]],
    done: Callable[[R, float], None],
) -> float:
    """``workers`` concurrent loops sharing ``items``: each awaits ``one(worker, item)`` for its next
    item as soon as its previous one is done, until ``items`` runs out.

    ``done(result, seconds)`` gets each result and its latency (taking the item is not timed). Returns
    the elapsed seconds.
    """

    async def worker(index: int) -> None:
        for item in items:
            t0 = time.perf_counter()
            result = await one(index, item)
            done(result, time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return time.perf_counter() - started


async def open_loop(
    port: int,
    rate: float,
    seconds: float,
    send: Callable[[HttpClient], Awaitable[int]],
    done: Callable[[int, float], None],
) -> float:
    """``rate`` requests a second for ``seconds``, each started on schedule whatever the responses.

    Each ``send(client)`` gets an idle keep-alive client or a new one and returns a status;
    ``done(status, seconds)`` counts latency from the scheduled start (so a server that falls behind
    shows it), with status 0 when the connection failed. Returns the elapsed seconds.
    """
    idle: list[HttpClient] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        client = idle.pop() if idle else HttpClient(port)
        try:
            status = await send(client)
            idle.append(client)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            client.close()
            status = 0
        done(status, time.perf_counter() - scheduled)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for client in idle:
        client.close()
    return elapsed
