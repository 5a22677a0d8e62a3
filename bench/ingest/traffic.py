"""Synthetic Segment traffic for ``corp-astro bench ingest``: batch bodies, a server process, HTTP clients."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import threading
import time
from dataclasses import dataclass, field

import orjson

from bench.kit import ServeProcess

__all__ = [
    "BENCH_DB",
    "EVENTS_PER_BATCH",
    "PROPS",
    "BodyFactory",
    "Client",
    "PhaseResult",
    "Server",
    "closed_loop",
    "open_loop",
]

BENCH_DB = "corp_astro_bench_ingest"
PROPS = 5
EVENTS_PER_BATCH = 100


class BodyFactory:
    """Segment batch bodies with unique messageIds, built by splicing ids into a pre-encoded template."""

    def __init__(self, users: list[str], write_key: str) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ts = now.isoformat(timespec="milliseconds") + "Z"
        self._parts: list[bytes] = []
        head = b'{"sentAt":"' + ts.encode() + b'","batch":['
        pieces: list[bytes] = []
        for i in range(EVENTS_PER_BATCH):
            user = users[i % len(users)] if i % 2 == 0 else f"ext-{i}"
            msg = {
                "type": "track",
                "event": f"event_{i % 10}",
                "userId": user,
                "anonymousId": f"anon-{i}",
                "timestamp": ts,
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
                "properties": {
                    "category": "bench",
                    "plan": "pro",
                    "amount": i * 1.5,
                    "sign": "leo",
                    "tags": ["a", "b"],
                },
                "messageId": "@@",
            }
            assert len(msg["properties"]) == PROPS
            pieces.append(orjson.dumps(msg))
        body = head + b",".join(pieces) + b"]}"
        self._parts = body.split(b"@@")
        self._counter = 0
        self.auth = b"Basic " + base64.b64encode(write_key.encode() + b":")

    def next(self) -> bytes:
        """A new body: every messageId is unique across the run."""
        self._counter += 1
        prefix = f"{os.getpid()}-{self._counter}-".encode()
        out = [self._parts[0]]
        for i, part in enumerate(self._parts[1:]):
            out.append(prefix + str(i).encode())
            out.append(part)
        return b"".join(out)


class Server(ServeProcess):
    """The server under test, its RSS (with worker children) sampled every 100 ms in a thread."""

    def __init__(self, url: str, env: dict[str, str], workers: int = 1) -> None:
        super().__init__(url, env, workers)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for ``/health``, then start sampling."""
        super().wait_ready(timeout)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process(self.proc.pid)
        while not self._stop.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                return
            self.samples.append((time.monotonic(), rss))
            time.sleep(0.1)

    def rss_between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]

    def stop(self, grace: float = 20.0) -> None:
        """Stop sampling and the server."""
        self._stop.set()
        super().stop(grace)


@dataclass
class PhaseResult:
    seconds: float
    ok: int = 0
    unavailable: int = 0
    other: int = 0
    events_ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def events_per_s(self) -> float:
        return self.events_ok / self.seconds


class Client:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the benchmark."""

    def __init__(self, port: int, auth: bytes) -> None:
        self.port = port
        self.head = (
            b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: " + auth + b"\r\nContent-Length: "
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        message = self.head + str(len(body)).encode() + b"\r\n\r\n" + body
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(message)
        status_line = await self.reader.readline()
        if not status_line and reused:
            # The server closed this connection while it sat idle (uvicorn's keep-alive timeout is 5 s);
            # like an HTTP client library, send again once on a new connection.
            self.writer.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(message)
            status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


async def closed_loop(port: int, factory: BodyFactory, clients: int, seconds: float) -> PhaseResult:
    result = PhaseResult(seconds)
    deadline = time.perf_counter() + seconds

    async def run(c: Client) -> None:
        while time.perf_counter() < deadline:
            body = factory.next()
            t0 = time.perf_counter()
            status = await c.post(body)
            _count(result, status, (time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(run(Client(port, factory.auth)) for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


def _count(result: PhaseResult, status: int, ms: float) -> None:
    if status == 200:
        result.ok += 1
        result.events_ok += EVENTS_PER_BATCH
        result.latencies_ms.append(ms)
    elif status == 503:
        result.unavailable += 1
    else:
        result.other += 1


async def open_loop(port: int, factory: BodyFactory, rate: float, seconds: float) -> PhaseResult:
    """Requests scheduled at ``rate``/s regardless of responses, each on an idle keep-alive connection
    or a new one (as many independent SDK clients would). Latency counts from the scheduled time."""
    result = PhaseResult(seconds)
    idle: list[Client] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        c = idle.pop() if idle else Client(port, factory.auth)
        try:
            status = await c.post(factory.next())
            idle.append(c)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            status = 0
        _count(result, status, (time.perf_counter() - scheduled) * 1000)

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    for c in idle:
        if c.writer is not None:
            c.writer.close()
    return result
