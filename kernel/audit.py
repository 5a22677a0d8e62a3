"""The audit trail of security-relevant actions (table ``audit_log``, retained 6 months).

Actions in use: ``login``, ``login_failed``, ``role_changed``, ``account_erased``, ``key_created``,
``key_revoked``. Never put passwords, tokens or write keys in ``details``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt

    import asyncpg

__all__ = ["count_before", "purge_before", "record"]


async def record(
    conn: asyncpg.Connection,
    action: str,
    *,
    actor_user_id: uuid.UUID | None = None,
    subject_id: str | None = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row in the caller's transaction (so it commits or rolls back with the action)."""
    await conn.execute(
        """INSERT INTO audit_log (actor_user_id, subject_id, action, ip_address, details)
           VALUES ($1, $2, $3, $4::inet, $5)""",
        actor_user_id,
        subject_id,
        action,
        ip_address,
        details or {},
    )


async def count_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> int:
    """Audit rows created before ``cutoff`` (what retention's plan reports it would purge)."""
    n: int = await conn.fetchval("SELECT count(*) FROM audit_log WHERE created_at < $1", cutoff)
    return n


async def purge_before(conn: asyncpg.Connection, cutoff: dt.datetime, limit: int) -> int:
    """Delete at most ``limit`` audit rows created before ``cutoff``, in the caller's transaction; the
    number deleted. Retention calls it batch by batch (6-month window) so each commit stays small.
    """
    # SKIP LOCKED: a row some other transaction holds is left for the next batch instead of waited for.
    status: str = await conn.execute(
        """DELETE FROM audit_log WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM audit_log WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))""",
        cutoff,
        limit,
    )
    return int(status.split()[-1])
