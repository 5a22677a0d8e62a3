"""Measuring helpers shared by the ``corp-astro bench`` commands (no domain code)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import asyncpg
import click

from kernel.db import recreate_database, url_for_database

__all__ = ["ServeProcess", "cpu_seconds", "free_port", "own_cpu_seconds", "scratch_database"]

_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``corp-astro serve`` on 127.0.0.1 in its own process group, as a benchmark's server under test.

    Stopped by its process group id (SIGTERM, then SIGKILL after ``grace`` seconds), never by name.
    """

    def __init__(
        self,
        database_url: str,
        env: dict[str, str] | None = None,
        workers: int = 1,
        stderr: IO[bytes] | None = None,
        scheduler: bool = False,
    ) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "corp_astro.cli", "serve", "--no-migrate"]
        cmd += ["--scheduler" if scheduler else "--no-scheduler"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CORP_ASTRO_LOG_LEVEL": "WARNING",
            # Load generators open many connections from 127.0.0.1; the per-address cap is not under test.
            "CORP_ASTRO_MAX_CONNECTIONS_PER_IP": "100000",
            **(env or {}),
        }
        self.proc = subprocess.Popen(cmd, cwd=_ROOT, env=full_env, stderr=stderr, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``/health`` answers 200; ``ClickException`` if the server exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise click.ClickException(f"the server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return
            time.sleep(0.2)
        raise click.ClickException("the server did not start")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited after ``grace`` seconds."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def cpu_seconds(pids: list[int], db_name: str) -> tuple[float, float]:
    """CPU seconds used so far by the server processes (with children) and by PostgreSQL backends of ``db_name``.

    Backends are found by their process title, which names the database; only backends alive at both
    readings of a phase count, so the benchmarks keep their connections open across a phase.
    """
    import psutil

    server = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                server += t.user + t.system
    backends = 0.0
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if db_name in " ".join(p.info["cmdline"] or []):
                t = p.cpu_times()
                backends += t.user + t.system
    return server, backends


def own_cpu_seconds() -> float:
    """CPU seconds this process (the load generator) has used so far."""
    t = os.times()
    return t.user + t.system


async def scratch_database(
    server: str, name: str, experiment: str, size: str, regenerate: bool
) -> tuple[str, bool]:
    """A scratch database kept between runs: its URL, and whether it must be (re)generated. A run records
    the size it generated as the ``description`` of its experiment ``experiment``; another size, a
    missing database or ``regenerate`` recreates it empty."""
    url = url_for_database(server, name)
    if not regenerate:
        try:
            conn = await asyncpg.connect(url)
        except (asyncpg.PostgresError, OSError):
            conn = None
        if conn is not None:
            try:
                found = await conn.fetchval("SELECT description FROM ab_tests WHERE name = $1", experiment)
            except asyncpg.PostgresError:
                found = None
            finally:
                await conn.close()
            if found == size:
                return url, False
    return await recreate_database(server, name), True
