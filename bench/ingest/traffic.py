"""Synthetic Segment traffic for ``corp-astro bench ingest``: batch bodies, a server process, the phases' load (``bench.load``)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import threading
import time
from dataclasses import dataclass, field

import orjson

from bench import load
from bench.kit import ServeProcess
from bench.load import HttpClient, for_seconds

__all__ = [
    "BENCH_DB",
    "EVENTS_PER_BATCH",
    "PROPS",
    "BodyFactory",
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
        auth = "Basic " + base64.b64encode(write_key.encode() + b":").decode()
        self.headers = {"Content-Type": "application/json", "Authorization": auth}

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


async def closed_loop(port: int, factory: BodyFactory, clients: int, seconds: float) -> PhaseResult:
    """``clients`` keep-alive connections posting batches back to back for ``seconds``."""
    result = PhaseResult(seconds)
    conns = [HttpClient(port) for _ in range(clients)]
    headers = factory.headers

    async def one(worker: int, body: bytes) -> int:
        status, _ = await conns[worker].request("POST", "/v1/batch", headers, body)
        return status

    bodies = for_seconds(seconds, iter(factory.next, None))
    result.seconds = await load.closed_loop(clients, bodies, one, lambda s, t: _count(result, s, t * 1000))
    for c in conns:
        c.close()
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
    headers = factory.headers

    async def send(client: HttpClient) -> int:
        status, _ = await client.request("POST", "/v1/batch", headers, factory.next())
        return status

    result.seconds = await load.open_loop(port, rate, seconds, send, lambda s, t: _count(result, s, t * 1000))
    return result
