"""The SQL of the backup commands: the server's facts and privileges, archiving settings, the tables of
the snapshot and their row counts and checksums. Every function runs on the caller's connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "SNAPSHOT_SESSION",
    "ServerFacts",
    "alter_system",
    "app_tables",
    "archive_failure",
    "archived_up_to",
    "create_restore_point",
    "export_snapshot",
    "import_snapshot",
    "lock_tables",
    "replay_state",
    "server_facts",
    "switch_wal",
    "table_stats",
]

# Every snapshot and every check of a restored copy renders rows the same way, whatever the server's
# defaults: the checksum hashes each row's text form.
SNAPSHOT_SESSION = {
    "timezone": "UTC",
    "datestyle": "ISO, YMD",
    "intervalstyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What ``backup init`` and ``backup full`` need to know about the server and the role."""

    version_num: int
    user: str
    superuser: bool
    replication: bool
    database: str
    settings: dict[str, str]  # name -> current value of the archiving settings
    pending_restart: set[str]
    segment_size: int


def _literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"


_SETTINGS = ("wal_level", "archive_mode", "archive_command", "archive_timeout", "data_directory")


async def server_facts(conn: asyncpg.Connection) -> ServerFacts:
    """The server's version, the role's attributes and the archiving settings (as this role sees them)."""
    role = await conn.fetchrow(
        "SELECT current_user AS u, rolsuper, rolreplication, current_database() AS db,"
        " current_setting('server_version_num')::int AS v,"
        " pg_size_bytes(current_setting('wal_segment_size')) AS seg"
        " FROM pg_roles WHERE rolname = current_user"
    )
    rows = await conn.fetch(
        "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY($1::text[])", _SETTINGS
    )
    return ServerFacts(
        version_num=role["v"],
        user=role["u"],
        superuser=role["rolsuper"],
        replication=role["rolreplication"],
        database=role["db"],
        settings={r["name"]: r["setting"] for r in rows},
        pending_restart={r["name"] for r in rows if r["pending_restart"]},
        segment_size=int(role["seg"]),
    )


async def alter_system(conn: asyncpg.Connection, values: dict[str, str]) -> None:
    """ALTER SYSTEM SET each value (superuser only), then reload the configuration."""
    for name, value in values.items():
        # ALTER SYSTEM takes no bind parameters; the value is quoted as a SQL literal here.
        await conn.execute(f"ALTER SYSTEM SET {name} = {_literal(value)}")
    await conn.execute("SELECT pg_reload_conf()")


async def switch_wal(conn: asyncpg.Connection) -> str:
    """Close the current WAL segment so the archiver ships it; the closed segment's file name."""
    name: str = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
    return name


async def archived_up_to(conn: asyncpg.Connection) -> str | None:
    """The newest segment the archiver reports shipped, or None."""
    name: str | None = await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
    return name


async def archive_failure(conn: asyncpg.Connection) -> str | None:
    """The segment the archiver last failed on, if that failure is newer than its last success."""
    row = await conn.fetchrow(
        "SELECT last_failed_wal, last_failed_time, last_archived_time FROM pg_stat_archiver"
    )
    if row["last_failed_time"] is None:
        return None
    if row["last_archived_time"] is not None and row["last_archived_time"] > row["last_failed_time"]:
        return None
    failed: str = row["last_failed_wal"]
    return failed


async def app_tables(conn: asyncpg.Connection) -> list[str]:
    """Every top-level table of the public schema (a partitioned table counts its partitions), by name."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           ORDER BY c.relname"""
    )
    return [r["relname"] for r in rows]


async def lock_tables(conn: asyncpg.Connection, tables: list[str], timeout_ms: int) -> None:
    """SHARE-lock ``tables`` (writers wait, readers do not) in the caller's transaction."""
    await conn.execute(f"SET LOCAL lock_timeout = {int(timeout_ms)}")
    names = ", ".join(f'public."{t}"' for t in tables)
    await conn.execute(f"LOCK TABLE {names} IN SHARE MODE")


async def export_snapshot(conn: asyncpg.Connection) -> str:
    """Export the caller's transaction snapshot for another session to import."""
    name: str = await conn.fetchval("SELECT pg_export_snapshot()")
    return name


async def create_restore_point(conn: asyncpg.Connection, name: str) -> str:
    """Write a named restore point into the WAL; its LSN."""
    lsn: str = await conn.fetchval("SELECT pg_create_restore_point($1)::text", name)
    return lsn


async def import_snapshot(conn: asyncpg.Connection, snapshot: str) -> None:
    """Adopt an exported snapshot in the caller's (repeatable read) transaction."""
    # Must be the transaction's first statement: no query may run before it, not even quote_literal.
    await conn.execute(f"SET TRANSACTION SNAPSHOT {_literal(snapshot)}")


async def table_stats(conn: asyncpg.Connection, table: str) -> dict[str, str | int]:
    """Row count and an order-independent checksum (the sum of a 64-bit hash of each row's text)."""
    row = await conn.fetchrow(
        f"""SELECT count(*) AS n, coalesce(sum(hashtextextended(snap_row::text, 0)::numeric), 0)::text AS h
            FROM public."{table}" snap_row"""
    )
    return {"rows": int(row["n"]), "checksum": str(row["h"])}


async def replay_state(conn: asyncpg.Connection) -> tuple[bool, str | None, str | None]:
    """(in recovery, the replay pause state, the time of the last replayed transaction) of a restored
    server."""
    row = await conn.fetchrow(
        """SELECT pg_is_in_recovery() AS rec,
                  CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS state,
                  pg_last_xact_replay_timestamp()::text AS replayed"""
    )
    return bool(row["rec"]), row["state"], row["replayed"]
