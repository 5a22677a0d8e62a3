"""The audit trail of security-relevant actions (table ``audit_log``, retained 6 months).

Actions in use: ``login``, ``login_failed``, ``role_changed``, ``account_erased``, ``key_created``,
``key_revoked``. Never put passwords, tokens or write keys in ``details``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

__all__ = ["record"]


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
