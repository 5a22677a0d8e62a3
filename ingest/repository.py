"""SQL of the ingest domain: the flush's binary COPYs and event sources; the dedupe ledger's SQL (and the
flush's first statement, which also locks the known users) is ``ingest.ledger``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS
from ingest.models import AnalyticsEvent, ApiSource, EventProperty
from kernel.auth import Source

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "copy_events",
    "copy_properties",
    "find_active_source",
    "insert_source",
    "list_sources",
    "revoke_source",
]

# Table and column names come from the models (``ingest.models``), read once at import: a renamed or
# dropped column fails the import instead of a query. The statements stay plain SQL text built from them,
# so the flush runs no ORM code.
_EVENTS = AnalyticsEvent.__tablename__
_PROPERTIES = EventProperty.__tablename__
_SOURCES = ApiSource.__tablename__
_E = AnalyticsEvent.__table__.c
_S = ApiSource.__table__.c
# What a source row reads as everywhere: all but the key's hash (which never leaves the database).
_SOURCE_OUT = ", ".join(c.name for c in ApiSource.__table__.columns if c.name != _S.key_hash.name)

_INSERT_SOURCE = f"""INSERT INTO {_SOURCES} ({_S.name.name}, {_S.key_hash.name}, {_S.key_prefix.name}) VALUES ($1, $2, $3)
           RETURNING {_SOURCE_OUT}"""
_LIST_SOURCES = f"SELECT {_SOURCE_OUT} FROM {_SOURCES} ORDER BY {_S.created_at.name}, {_S.name.name}"
_REVOKE_SOURCE = f"""UPDATE {_SOURCES} SET {_S.revoked_at.name} = COALESCE({_S.revoked_at.name}, CURRENT_TIMESTAMP)
           WHERE {_S.source_id.name} = $1 RETURNING {_SOURCE_OUT}"""
_UNLINK_USER = f"UPDATE {_EVENTS} SET {_E.user_id.name} = NULL WHERE {_E.user_id.name} = $1"
_FIND_SOURCE = (
    f"SELECT {_S.source_id.name}, {_S.name.name} FROM {_SOURCES} "
    f"WHERE {_S.key_hash.name} = $1 AND {_S.revoked_at.name} IS NULL"
)


async def _parts(stream: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in stream:
        yield part


async def copy_events(conn: asyncpg.Connection, stream: Sequence[bytes], timeout: float) -> None:
    """Binary COPY of ``analytics_events`` rows: ``stream`` is a whole binary COPY stream of
    ``ingest.mapping.EVENT_COLUMNS`` in parts (``ingest.mapping.encode_rows``)."""
    await conn.copy_to_table(
        _EVENTS, source=_parts(stream), columns=EVENT_COLUMNS, format="binary", timeout=timeout
    )


async def copy_properties(conn: asyncpg.Connection, stream: Sequence[bytes], timeout: float) -> None:
    """Binary COPY of ``event_properties`` rows: a whole binary COPY stream of
    ``ingest.mapping.PROPERTY_COLUMNS`` in parts (``ingest.mapping.encode_rows``)."""
    await conn.copy_to_table(
        _PROPERTIES, source=_parts(stream), columns=PROPERTY_COLUMNS, format="binary", timeout=timeout
    )


# --- Event sources (write keys) -------------------------------------------------------------------


async def insert_source(
    conn: asyncpg.Connection, name: str, key_hash: bytes, key_prefix: str
) -> asyncpg.Record:
    """Create a source; return its row."""
    row: asyncpg.Record = await conn.fetchrow(_INSERT_SOURCE, name, key_hash, key_prefix)
    return row


async def list_sources(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every source, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(_LIST_SOURCES)
    return rows


async def revoke_source(conn: asyncpg.Connection, source_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark a source's key revoked (idempotent: the first revocation time is kept); None if unknown."""
    row: asyncpg.Record | None = await conn.fetchrow(_REVOKE_SOURCE, source_id)
    return row


async def unlink_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Set ``user_id`` NULL on the user's events (explicitly, not trusting the FK's SET NULL, which ingest
    may drop for COPY speed); the number unlinked."""
    status: str = await conn.execute(_UNLINK_USER, user_id)
    return int(status.rsplit(" ", 1)[-1])


async def find_active_source(pool: asyncpg.Pool, key_hash: bytes) -> Source | None:
    """The active source whose write key hashes to ``key_hash`` (the kernel's ``WriteKeyCache`` lookup)."""
    row = await pool.fetchrow(_FIND_SOURCE, key_hash)
    return Source(source_id=row["source_id"], name=row["name"]) if row else None
