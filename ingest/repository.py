"""SQL of the ingest domain: the flush (dedupe claim, user lock, binary COPY) and event sources."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ingest.mapping import EVENT_COLUMNS, PROPERTY_COLUMNS
from kernel.auth import Source

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "claim_event_ids",
    "copy_event_ids",
    "copy_events",
    "copy_properties",
    "find_active_source",
    "insert_source",
    "list_sources",
    "lock_known_users",
    "prune_message_ids",
    "revoke_source",
]

# Sorted input: two flushes claiming overlapping ids take the unique-index locks in the same order, so
# they wait for each other instead of deadlocking.
_CLAIM = """
INSERT INTO ingest_message_ids (event_id)
SELECT id FROM unnest($1::uuid[]) AS t(id) ORDER BY id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
# FOR KEY SHARE is the lock a foreign-key check takes: the users row cannot be deleted (or its key
# changed) until the flush commits, and a user deleted before it is simply not found.
_LOCK_USERS = "SELECT user_id FROM users WHERE user_id = ANY($1::uuid[]) FOR KEY SHARE"


async def claim_event_ids(
    conn: asyncpg.Connection, event_ids: Sequence[uuid.UUID], timeout: float
) -> set[Any]:
    """Record ``event_ids`` as seen; return the ones that were new (the others are duplicates).

    A concurrent transaction claiming the same id makes this wait for it; if it commits, the id is a
    duplicate here, if it rolls back, the id is ours. Either way each message is stored once.
    """
    rows = await conn.fetch(_CLAIM, sorted(event_ids), timeout=timeout)
    return {r[0] for r in rows}


async def copy_event_ids(conn: asyncpg.Connection, event_ids: Sequence[uuid.UUID], timeout: float) -> None:
    """Record ``event_ids`` as seen by binary COPY (about half the cost of ``claim_event_ids``).

    Raises ``UniqueViolationError`` if any was seen before; the caller then falls back to the claim.
    """
    await conn.copy_records_to_table(
        "ingest_message_ids",
        records=[(i,) for i in sorted(event_ids)],
        columns=("event_id",),
        timeout=timeout,
    )


async def lock_known_users(
    conn: asyncpg.Connection, user_ids: Iterable[uuid.UUID], timeout: float
) -> set[Any]:
    """The subset of ``user_ids`` that are users, locked against deletion until the transaction ends."""
    rows = await conn.fetch(_LOCK_USERS, list(user_ids), timeout=timeout)
    return {r[0] for r in rows}


async def copy_events(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]], timeout: float) -> None:
    """Binary COPY of ``analytics_events`` rows (``ingest.mapping.EVENT_COLUMNS`` order)."""
    await conn.copy_records_to_table("analytics_events", records=rows, columns=EVENT_COLUMNS, timeout=timeout)


async def copy_properties(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]], timeout: float) -> None:
    """Binary COPY of ``event_properties`` rows (``ingest.mapping.PROPERTY_COLUMNS`` order)."""
    await conn.copy_records_to_table(
        "event_properties", records=rows, columns=PROPERTY_COLUMNS, timeout=timeout
    )


async def prune_message_ids(conn: asyncpg.Connection, older_than: dt.datetime, limit: int) -> int:
    """Forget up to ``limit`` message ids first seen before ``older_than``; return how many."""
    status: str = await conn.execute(
        """DELETE FROM ingest_message_ids WHERE event_id IN (
               SELECT event_id FROM ingest_message_ids WHERE first_seen_at < $1 LIMIT $2)""",
        older_than,
        limit,
    )
    return int(status.split()[-1])


# --- Event sources (write keys) -------------------------------------------------------------------


async def insert_source(
    conn: asyncpg.Connection, name: str, key_hash: bytes, key_prefix: str
) -> asyncpg.Record:
    """Create a source; return its row."""
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO api_sources (name, key_hash, key_prefix) VALUES ($1, $2, $3)
           RETURNING source_id, name, key_prefix, created_at, revoked_at""",
        name,
        key_hash,
        key_prefix,
    )
    return row


async def list_sources(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every source, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT source_id, name, key_prefix, created_at, revoked_at FROM api_sources ORDER BY created_at, name"
    )
    return rows


async def revoke_source(conn: asyncpg.Connection, source_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark a source's key revoked (idempotent: the first revocation time is kept); None if unknown."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE api_sources SET revoked_at = COALESCE(revoked_at, CURRENT_TIMESTAMP)
           WHERE source_id = $1 RETURNING source_id, name, key_prefix, created_at, revoked_at""",
        source_id,
    )
    return row


async def unlink_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Set ``user_id`` NULL on the user's events (explicitly, not trusting the FK's SET NULL, which ingest
    may drop for COPY speed); the number unlinked."""
    status: str = await conn.execute("UPDATE analytics_events SET user_id = NULL WHERE user_id = $1", user_id)
    return int(status.rsplit(" ", 1)[-1])


async def find_active_source(pool: asyncpg.Pool, key_hash: bytes) -> Source | None:
    """The active source whose write key hashes to ``key_hash`` (the kernel's ``WriteKeyCache`` lookup)."""
    row = await pool.fetchrow(
        "SELECT source_id, name FROM api_sources WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return Source(source_id=row["source_id"], name=row["name"]) if row else None
