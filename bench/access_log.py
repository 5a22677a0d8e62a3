"""``corp-astro bench access-log``: does the access log slow the ingest hot path? Off vs on vs sampled.

A real ``corp-astro serve`` at log level INFO (the default), its stderr written to a file as a process
manager would, takes K keep-alive clients posting one-event Segment batches back to back (the smallest
request, so the access log's share of a request's cost is at its largest). Each configuration runs
``--rounds`` times, interleaved (off, on, sample, text, off, on ...) so that the shared machine's load
drifts over all of them alike; the figures are the medians, each beside ``off`` from the same run.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import orjson

from bench.ingest.copy import setup
from bench.kit import ServeProcess, cpu_seconds
from bench.load import HttpClient, closed_loop, for_seconds
from kernel.db import recreate_database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["bench_access_log"]

DB = "corp_astro_bench_access_log"
CONFIGS: dict[str, dict[str, str]] = {
    "off": {"CORP_ASTRO_ACCESS_LOG": "off", "CORP_ASTRO_LOG_FORMAT": "json"},
    "on (json)": {"CORP_ASTRO_ACCESS_LOG": "on", "CORP_ASTRO_LOG_FORMAT": "json"},
    "sample 0.01 (json)": {"CORP_ASTRO_ACCESS_LOG_SAMPLE": "0.01", "CORP_ASTRO_LOG_FORMAT": "json"},
    "on (text)": {"CORP_ASTRO_ACCESS_LOG": "on", "CORP_ASTRO_LOG_FORMAT": "text"},
}


class _Bodies:
    """Batches of ``events`` events, each with a new messageId."""

    def __init__(self, users: list[str], write_key: str, events: int = 1) -> None:
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        batch = [
            {"type": "track", "event": "tap", "userId": users[0], "timestamp": ts, "messageId": f"@@-{i}"}
            for i in range(events)
        ]
        self._parts = orjson.dumps({"batch": batch}).split(b"@@")
        self._n = 0
        auth = "Basic " + base64.b64encode(write_key.encode() + b":").decode()
        self.headers = {"Content-Type": "application/json", "Authorization": auth}

    def next(self) -> bytes:
        self._n += 1
        return f"{os.getpid()}-{self._n}".encode().join(self._parts)


async def _load(port: int, bodies: _Bodies, clients: int, seconds: float) -> tuple[int, int, float]:
    """(200s, other answers, elapsed seconds) of ``clients`` closed loops for ``seconds``."""
    conns = [await HttpClient.open(port) for _ in range(clients)]
    counts = [0, 0]

    async def one(worker: int, body: bytes) -> int:
        status, _ = await conns[worker].request("POST", "/v1/batch", bodies.headers, body)
        return status

    def done(status: int, _: float) -> None:
        counts[0 if status == 200 else 1] += 1

    elapsed = await closed_loop(clients, for_seconds(seconds, iter(bodies.next, None)), one, done)
    for c in conns:
        c.close()
    return counts[0], counts[1], elapsed


def _run(url: str, env: dict[str, str], bodies: _Bodies, clients: int, seconds: float) -> dict[str, float]:
    """One server under one configuration: requests/s, server CPU per request, log bytes per request."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stderr"
        with log.open("wb") as err:
            server = ServeProcess(url, {**env, "CORP_ASTRO_LOG_LEVEL": "INFO"}, stderr=err)
            try:
                server.wait_ready()
                asyncio.run(_load(server.port, bodies, clients, 1.0))  # warm-up
                size0 = log.stat().st_size
                cpu0 = cpu_seconds([server.proc.pid], DB)[0]
                ok, other, elapsed = asyncio.run(_load(server.port, bodies, clients, seconds))
                cpu1 = cpu_seconds([server.proc.pid], DB)[0]
                written = log.stat().st_size - size0
            finally:
                server.stop()
    if other:
        raise click.ClickException(f"{other} requests were not answered 200")
    return {
        "rps": ok / elapsed,
        "cpu_us": (cpu1 - cpu0) / ok * 1e6,
        "log_bytes": written / ok,
    }


def _middleware_us(rounds: int, requests: int = 20_000) -> dict[str, float]:
    """CPU microseconds per request of the request-id/access-log middleware around a trivial ASGI app,
    in this process (no network, no server): the access log's own cost, without the machine's noise."""
    from kernel.observability import RequestIdMiddleware, configure_logging
    from kernel.settings import AccessLog

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/batch", "headers": [], "client": ("127.0.0.1", 1)}
    middleware = RequestIdMiddleware(app)

    async def run() -> float:
        t0 = time.process_time()
        for _ in range(requests):
            await middleware(dict(scope), receive, send)  # type: ignore[arg-type]
        return (time.process_time() - t0) / requests * 1e6

    policies = {
        "off": ("json", AccessLog("off")),
        "on (json)": ("json", AccessLog("on")),
        "sample 0.01 (json)": ("json", AccessLog("sample", 0.01)),
        "on (text)": ("text", AccessLog("on")),
    }
    samples: dict[str, list[float]] = {name: [] for name in policies}
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with tempfile.TemporaryFile("w") as out:
        try:
            for _ in range(rounds):
                for name, (fmt, policy) in policies.items():
                    configure_logging("INFO", fmt=fmt, access=policy, stream=out)
                    samples[name].append(asyncio.run(run()))
        finally:
            root.handlers[:], root.level = saved
    return {name: statistics.median(v) for name, v in samples.items()}


@click.command("access-log")
@click.option("--clients", "-k", default=8, show_default=True, help="Concurrent keep-alive clients.")
@click.option("--seconds", default=8.0, show_default=True, help="Length of each measured run.")
@click.option("--rounds", default=3, show_default=True, help="Runs of each configuration, interleaved.")
@click.option("--events", default=1, show_default=True, help="Events per batch (1: the smallest request).")
def bench_access_log(clients: int, seconds: float, rounds: int, events: int) -> None:
    """Ingest batches with the access log off, on (JSON, text) and sampled at 1 %."""
    from kernel import migrate

    load = os.getloadavg()[0]
    click.echo(f"machine: {os.cpu_count()} CPUs, 1-minute load {load:.1f} at start (shared machine)")
    click.echo(
        f"(a) the middleware alone, in this process, median of {2 * rounds + 1} rounds of 20,000 requests:"
    )
    alone = _middleware_us(2 * rounds + 1)
    for name, us in alone.items():
        click.echo(f"  {name:<20} {us:5.1f} us CPU per request ({us - alone['off']:+.1f} us vs off)")
    url = asyncio.run(recreate_database(resolve_database_url(get_settings()), DB))
    migrate.upgrade(url, "heads")
    _, write_key, users = asyncio.run(setup(url, 10))
    bodies = _Bodies(users, write_key, events)
    click.echo(
        f"(b) a real server, {clients} clients, {events}-event batches, {seconds:g} s per run, {rounds} rounds, medians:"
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for _ in range(rounds):
        for name, env in CONFIGS.items():
            runs[name].append(_run(url, env, bodies, clients, seconds))
            time.sleep(0.5)
    base = {k: statistics.median(r[k] for r in runs["off"]) for k in ("rps", "cpu_us")}
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        cpu = statistics.median(r["cpu_us"] for r in results)
        size = statistics.median(r["log_bytes"] for r in results)
        click.echo(
            f"  {name:<20} {rps:>7,.0f} requests/s ({rps / base['rps']:.3f} x off), server CPU "
            f"{cpu:>5.0f} us/request ({cpu / base['cpu_us']:.3f} x off), log {size:>5.1f} bytes/request"
        )
