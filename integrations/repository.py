"""SQL of the integrations domain's logs. Never commits: callers own the transaction.

The purges the retention policy asks of this domain's logs (6 months): webhook deliveries, workflow
execution steps and workflow executions. Each deletes one bounded batch, so that the caller can commit
batch by batch (short locks, bounded WAL per commit). Subscriptions are in ``webhooks_sql``, the
delivery queue in ``queue``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

    import asyncpg

__all__ = [
    "count_webhook_deliveries_before",
    "count_workflow_execution_steps_before",
    "count_workflow_executions_before",
    "purge_webhook_deliveries",
    "purge_workflow_execution_steps",
    "purge_workflow_executions",
]

# (table, time column) of each log. Identifiers come from these constants only.
_DELIVERIES = ("webhook_deliveries", "queued_at")
_STEPS = ("workflow_execution_steps", "started_at")
_EXECUTIONS = ("workflow_executions", "started_at")


async def _count(conn: asyncpg.Connection, log: tuple[str, str], cutoff: dt.datetime) -> int:
    table, column = log
    n: int = await conn.fetchval(f'SELECT count(*) FROM {table} WHERE "{column}" < $1', cutoff)
    return n


async def _purge(conn: asyncpg.Connection, log: tuple[str, str], cutoff: dt.datetime, limit: int) -> int:
    table, column = log
    # SKIP LOCKED: a row some other transaction holds is left for the next batch instead of waited for.
    status: str = await conn.execute(
        f"""DELETE FROM {table} WHERE ctid = ANY(ARRAY(
              SELECT ctid FROM {table} WHERE "{column}" < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))""",
        cutoff,
        limit,
    )
    return int(status.split()[-1])


async def count_webhook_deliveries_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> int:
    """Webhook deliveries queued before ``cutoff``."""
    return await _count(conn, _DELIVERIES, cutoff)


async def purge_webhook_deliveries(conn: asyncpg.Connection, cutoff: dt.datetime, limit: int) -> int:
    """Delete at most ``limit`` webhook deliveries queued before ``cutoff``; the number deleted."""
    return await _purge(conn, _DELIVERIES, cutoff, limit)


async def count_workflow_execution_steps_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> int:
    """Workflow execution steps started before ``cutoff``."""
    return await _count(conn, _STEPS, cutoff)


async def purge_workflow_execution_steps(conn: asyncpg.Connection, cutoff: dt.datetime, limit: int) -> int:
    """Delete at most ``limit`` workflow execution steps started before ``cutoff``; the number deleted.

    Purge steps before executions: an execution's steps go with it anyway (ON DELETE CASCADE), but
    purging them first keeps each batch's size what the caller asked for.
    """
    return await _purge(conn, _STEPS, cutoff, limit)


async def count_workflow_executions_before(conn: asyncpg.Connection, cutoff: dt.datetime) -> int:
    """Workflow executions started before ``cutoff``."""
    return await _count(conn, _EXECUTIONS, cutoff)


async def purge_workflow_executions(conn: asyncpg.Connection, cutoff: dt.datetime, limit: int) -> int:
    """Delete at most ``limit`` workflow executions started before ``cutoff`` (their steps cascade)."""
    return await _purge(conn, _EXECUTIONS, cutoff, limit)
