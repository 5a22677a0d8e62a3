"""Database kernel: SQLAlchemy metadata (the schema's single source of truth) and the asyncpg pool.

The ORM classes exist for the schema and Alembic. Request and job code talks to PostgreSQL through
one asyncpg pool: repositories write SQL, hot paths use prepared statements and binary COPY.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from kernel.embedded import embedded_url

if TYPE_CHECKING:
    from kernel.settings import Settings

__all__ = [
    "DB_UNAVAILABLE",
    "Base",
    "Database",
    "drop_database",
    "recreate_database",
    "resolve_database_url",
    "sqlalchemy_url",
    "unreachable",
    "url_for_database",
    "uuid7",
]

# Errors that mean "the database is unreachable right now, or the connection broke": nothing was
# committed, and a retry on another connection may succeed. The HTTP layer answers them 503
# (``kernel.http_errors``); ingest's flush retries them once, then answers 503 (``ingest.faults``).
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    # asyncpg's protocol state on a pooled connection broken by a PostgreSQL restart ("cannot switch to
    # state 12; another operation (2) is in progress"): seen in an outside restart test.
    asyncpg.exceptions._base.InternalClientError,
)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc``, raised by work that also does its own I/O (a scheduled job, a listener), means the
    database is unreachable: ``DB_UNAVAILABLE``, but of the OSErrors only a refused or broken connection
    and a missing socket file (no file name: not a file the work opened), so that its own file errors (an
    export's full disk) are not taken for an outage."""
    if not isinstance(exc, DB_UNAVAILABLE):
        return False
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return isinstance(exc, FileNotFoundError) and exc.filename is None
    return True


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every domain's ``models.py``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_last_uuid7 = [0, 0]  # (millisecond, 12-bit sequence) of this process's last UUIDv7


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond time prefix, so new keys land at the right of a B-tree.

    Monotonic within the process (RFC 9562 section 6.2, method 1): within one millisecond the 12 bits after
    the version count up from a random start, so ids made one after another sort in that order (the
    workflow runner orders an execution's steps, written in one batch with one time, by their ids). The
    62 random bits after the variant keep ids unique across processes.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    last_ms, last_seq = _last_uuid7
    if ms > last_ms:
        seq = (rand >> 62) & 0x7FF  # a random start in the lower half leaves room to count up
    elif last_seq < 0xFFF:
        ms, seq = last_ms, last_seq + 1
    else:  # 4,096 ids in one millisecond: borrow the next one
        ms, seq = last_ms + 1, 0
    _last_uuid7[0], _last_uuid7[1] = ms, seq
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= seq << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def resolve_database_url(settings: Settings) -> str:
    """``DATABASE_URL`` if set, else the embedded server under ``<data_dir>/postgres``."""
    if settings.database_url:
        return settings.database_url
    return embedded_url(settings.data_dir / "postgres")


def url_for_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server (query parameters such as ``host`` kept)."""
    head, _, tail = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{database}" + (f"?{tail}" if tail else "")


async def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``url`` (its sessions are terminated first)."""
    conn = await asyncpg.connect(url_for_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def recreate_database(url: str, name: str, *, template: str | None = None) -> str:
    """Drop and create a scratch database (tests, benchmarks) on the server of ``url``; return its URL."""
    await drop_database(url, name)
    conn = await asyncpg.connect(url_for_database(url, "postgres"))
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return url_for_database(url, name)


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq-style URL into the SQLAlchemy asyncpg form used by Alembic."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query.

    asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release:
    one more round trip per request on every hot path. Nothing in this codebase leaves session state on a
    pooled connection: settings are ``SET LOCAL``, cursors live inside transactions, advisory locks are
    transaction-scoped, and session-scoped locks use ``Database.dedicated_connection``. asyncpg still rolls
    back a transaction left open (by a cancelled request, say) before calling this.
    """


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns round-trip as Python objects rather than strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """The process's single asyncpg pool, opened at startup and closed at shutdown."""

    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 10, command_timeout: float | None = 60
    ) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool. Connections are opened lazily so startup works while the database is down."""
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=0,
            max_size=self._max_size,
            init=_init_connection,
            reset=_no_session_reset,
            # Every TIMESTAMP column holds UTC; pin the session so CURRENT_TIMESTAMP defaults agree.
            server_settings={"timezone": "UTC", "application_name": "corp-astro"},
            command_timeout=self._command_timeout,
        )

    async def close(self) -> None:
        """Close the pool, waiting briefly for connections in use."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except Exception:  # closing a pool to a dead server must not break shutdown
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool."""
        if self._pool is None:
            raise RuntimeError("database pool is not open")
        return self._pool

    @asynccontextmanager
    async def dedicated_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection outside the pool, closed afterwards: for session state such as session locks."""
        conn = await asyncpg.connect(
            self.url, server_settings={"timezone": "UTC", "application_name": "corp-astro"}
        )
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """Acquire a connection and run one transaction on it: the job/CLI boundary."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def fetchval(self, query: str, *args: Any) -> Any:
        """Run a one-value query outside an explicit transaction."""
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query, *args)
