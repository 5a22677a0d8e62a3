"""Test infrastructure: the real test database, app clients, live servers and a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from kernel.db import recreate_database, url_for_database

__all__ = [
    "EmbeddedTestServer",
    "LiveServer",
    "TcpProxy",
    "admin_url",
    "env",
    "free_port",
    "recreate_database",
    "truncate_all",
]

ROOT = Path(__file__).resolve().parent.parent
# Overridable so that concurrent test runs (or a test that restarts PostgreSQL) can use their own server.
TEST_PGDATA = Path(os.environ.get("CORP_ASTRO_TEST_PGDATA", ROOT / ".data" / "test-postgres"))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedTestServer:
    """The embedded PostgreSQL used by the tests when TEST_DATABASE_URL is unset."""

    def __init__(self, pgdata: Path = TEST_PGDATA) -> None:
        from kernel.embedded import embedded_server

        self.pgdata = pgdata
        self.server = embedded_server(pgdata)

    def url(self, database: str) -> str:
        return str(self.server.get_uri(database))

    def stop(self) -> None:
        """Stop PostgreSQL (fast shutdown: open connections are cut, as in a crash or restart)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        """Start PostgreSQL again on the same socket and data directory."""
        with self.server._lock:
            self.server.ensure_postgres_running()


def admin_url(url: str, database: str = "postgres") -> str:
    """``url`` with its database name replaced (for CREATE/DROP DATABASE)."""
    return url_for_database(url, database)


async def truncate_all(url: str) -> None:
    """Empty every table but alembic_version (partitions are emptied through their parents)."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND c.relname <> 'alembic_version'
            """
        )
        if tables:
            names = ", ".join(f'"{r["relname"]}"' for r in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()


class LiveServer:
    """``corp-astro serve`` in its own process group on 127.0.0.1, stopped by its pid."""

    def __init__(
        self,
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        scheduler: bool = False,
        args: tuple[str, ...] = (),
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CORP_ASTRO_JWT_SECRET": "test-secret-for-live-servers",
            "CORP_ASTRO_LOG_LEVEL": "WARNING",
            # Suites register many accounts from 127.0.0.1; the registration limits have their own tests.
            "CORP_ASTRO_AUTH_REGISTER_IP_ATTEMPTS": "100000",
            "CORP_ASTRO_AUTH_REGISTER_GLOBAL_ATTEMPTS": "100000",
            **(env or {}),
        }
        self._scheduler = scheduler
        self._args = args  # more ``serve`` options (--workers 2)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        cmd = [
            sys.executable,
            "-m",
            "corp_astro.cli",
            "serve",
            "--no-migrate",
            "--scheduler" if self._scheduler else "--no-scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self._args,
        ]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self._env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL that a test can cut and restore.

    Cutting closes every proxied connection and refuses new ones, which is what an application sees
    when its database goes away, without touching the database itself. The proxy runs its own event
    loop in a thread, so it keeps serving while the test's loop is blocked in a synchronous call.
    """

    def __init__(self, target_host: str | None, target_port: int, target_socket: str | None = None):
        self.target_host = target_host
        self.target_port = target_port
        self.target_socket = target_socket
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy to the server of ``url`` (a TCP host or a Unix socket directory in ``?host=``)."""
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        host = (query.get("host") or [parts.hostname or "127.0.0.1"])[0]
        port = int((query.get("port") or [parts.port or 5432])[0])
        if host.startswith("/"):
            return cls(None, port, host)
        return cls(host, port)

    def url_through(self, url: str) -> str:
        """``url`` rewritten to go through this proxy."""
        head, _, tail = url.partition("?")
        scheme, _, rest = head.partition("://")
        creds, _, hostpart = rest.rpartition("@")
        db = hostpart.split("/", 1)[1] if "/" in hostpart else ""
        query = "&".join(p for p in tail.split("&") if p and not p.startswith(("host=", "port=")))
        out = f"{scheme}://{creds + '@' if creds else ''}127.0.0.1:{self.port}/{db}"
        return out + (f"?{query}" if query else "")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> None:
        """Accept connections (again)."""
        self._run(self._start())

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._run(self._cut())

    def close(self) -> None:
        """Cut and stop the proxy's thread."""
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.target_socket:
                path = os.path.join(self.target_socket, f".s.PGSQL.{self.target_port}")
                up_reader, up_writer = await asyncio.open_unix_connection(path)
            else:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    """Temporarily set environment variables."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
