"""The backup boundary: every connection and transaction of ``backup init|full|switch-wal|verify|prune``,
and their schedule (full daily, verify weekly; WAL ships continuously through archive_command).

A run holds a session advisory lock on a dedicated connection for its whole length, as retention does:
one backup job at a time across every process and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import asyncpg

from kernel import audit
from kernel.scheduler import job_lock
from operations import catalog, service
from operations import repository as repo
from operations.catalog import BackupDir
from operations.errors import BackupBusy, BackupError, NotConfigured, VerifyFailed
from operations.pgtools import run_tool, stop_server
from operations.restore import Target, restore

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from litestar import Litestar

    from kernel.db import Database

__all__ = [
    "check_archiving",
    "full",
    "init",
    "login",
    "prune",
    "register_jobs",
    "restart_embedded",
    "switch_wal",
    "verify",
]

_log = logging.getLogger(__name__)
_LOCK_KEY = "corp-astro:backups"
_ARCHIVE_WAIT_S = 120.0


def login(url: str | None) -> dict[str, Any]:
    """User, password and database of ``url`` (the embedded server's when None), to log in to a copy."""
    if url is None:
        return {"user": "postgres", "database": "corp_astro"}
    parts = urlsplit(url)
    kwargs: dict[str, Any] = {"user": unquote(parts.username or "postgres")}
    kwargs["database"] = unquote(parts.path.lstrip("/")) or kwargs["user"]
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    return kwargs


@asynccontextmanager
async def _single_runner(db: Database) -> AsyncIterator[None]:
    async with job_lock(db, _LOCK_KEY) as mine:
        if not mine:
            raise BackupBusy("A backup job is already running in another process.")
        yield


async def init(db: Database, bdir: BackupDir) -> tuple[service.ArchivePlan, repo.ServerFacts]:
    """Set archiving into ``bdir`` with ALTER SYSTEM (superuser), or NotConfigured saying what to set."""
    async with db.dedicated_connection() as conn:
        facts = await repo.server_facts(conn)
        note = service.prepare_archive(bdir, facts.settings.get("data_directory"))
        plan = service.archive_plan(facts, bdir.wal)
        plan.note = note
        if plan.changes and not facts.superuser:
            raise NotConfigured(
                f"role {facts.user} is not a superuser, so it cannot ALTER SYSTEM. Set these in "
                "postgresql.conf (or have a superuser run ALTER SYSTEM SET for each), then restart "
                "PostgreSQL (archive_mode and wal_level take effect only at a restart):\n  "
                + "\n  ".join(plan.lines())
                + f"\nThe directory {bdir.wal} must be on the database server and writable by its OS user."
            )
        if plan.changes:
            await repo.alter_system(conn, plan.changes)
    # archive_plan decided ``restart`` from what changed: pg_reload_conf() is asynchronous, so the
    # server's pending_restart may not show the change yet.
    return plan, facts


async def check_archiving(db: Database, bdir: BackupDir) -> None:
    """NotConfigured unless the server archives into ``bdir`` now."""
    async with db.dedicated_connection() as conn:
        service.require_archiving(await repo.server_facts(conn), bdir)


def restart_embedded(pgdata: Path) -> None:
    """Restart the embedded server (archive_mode needs it); its other users reconnect on their own."""
    run_tool(
        "pg_ctl",
        ["-D", str(pgdata), "-l", str(pgdata / "log"), "-w", "-m", "fast", "restart"],
        as_server=True,
    )
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import PostmasterInfo

    server = PostgresServer._instances.get(pgdata.resolve())
    if server is not None:  # so that pgserver stops the new postmaster, not the gone one, at exit
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)


async def _await_archived(conn: asyncpg.Connection, segment: str) -> None:
    deadline = time.monotonic() + _ARCHIVE_WAIT_S
    while time.monotonic() < deadline:
        done = await repo.archived_up_to(conn)
        if done is not None and done >= segment:
            return
        failed = await repo.archive_failure(conn)
        if failed is not None and failed <= segment:
            raise NotConfigured(f"archive_command fails on {failed}; the server log says why")
        await asyncio.sleep(0.2)
    raise NotConfigured(f"{segment} was not archived within {_ARCHIVE_WAIT_S:.0f} s")


async def _switch(db: Database, reason: str) -> str:
    """Record ``reason`` in audit_log (a commit: recovery can reach a time only up to the last commit),
    close the WAL segment and wait until the archiver has shipped it."""
    async with db.transaction() as conn:
        await audit.record(conn, reason)
    async with db.dedicated_connection() as conn:
        segment = await repo.switch_wal(conn)
        await _await_archived(conn, segment)
    return segment


async def switch_wal(db: Database) -> str:
    """Archive everything committed so far (what archive_timeout does on its own, at most hourly)."""
    return await _switch(db, "backup_wal_switched")


async def _hold_writers(locker: asyncpg.Connection, tables: list[str], name: str) -> tuple[Any, str, str]:
    """Open a repeatable-read transaction that SHARE-locks ``tables`` (waiting at most 2 s at a time for
    the writers in flight, five times), exports its snapshot and writes restore point ``name``; the open
    transaction, the exported snapshot and the point's LSN."""
    for attempt in range(5):
        hold = locker.transaction(isolation="repeatable_read")
        await hold.start()
        try:
            await repo.lock_tables(locker, tables, timeout_ms=2_000)
            exported = await repo.export_snapshot(locker)
            return hold, exported, await repo.create_restore_point(locker, name)
        except asyncpg.LockNotAvailableError:
            await hold.rollback()
            if attempt == 4:
                raise BackupError(
                    "the tables stayed locked by long writes; the snapshot was not taken"
                ) from None
            await asyncio.sleep(1 + attempt)
        except BaseException:
            await hold.rollback()
            raise
    raise AssertionError("unreachable")


async def _snapshot(db: Database, name: str) -> dict[str, Any]:
    """Row counts and checksums of every table at a named restore point, writers held off only for the
    moment it takes to write the point and export the snapshot (not while the tables are read)."""
    async with db.dedicated_connection() as locker, db.dedicated_connection() as reader:
        tables = await repo.app_tables(locker)
        hold, exported, lsn = await _hold_writers(locker, tables, name)
        taken = service.utcnow()
        held = True
        try:
            async with reader.transaction(isolation="repeatable_read", readonly=True):
                await repo.import_snapshot(reader, exported)
                await hold.commit()  # writers go on; the reader keeps the exported snapshot
                held = False
                for key, value in repo.SNAPSHOT_SESSION.items():
                    await reader.execute(f"SET LOCAL {key} = '{value}'")
                stats = {t: await repo.table_stats(reader, t) for t in tables}
        finally:
            if held:
                await hold.rollback()
    return {"restore_point": name, "lsn": lsn, "taken_at": taken.isoformat(), "tables": stats}


async def full(db: Database, bdir: BackupDir) -> dict[str, Any]:
    """A base backup, checked, with its snapshot at a restore point, and the WAL up to it archived."""
    async with _single_runner(db):
        async with db.dedicated_connection() as conn:
            facts = await repo.server_facts(conn)
        service.require_archiving(facts, bdir)
        if not (facts.superuser or facts.replication):
            raise NotConfigured("\n".join(service.privilege_problems(facts)))
        backup_id = service.utcnow().strftime("%Y%m%dT%H%M%SZ")
        meta = await asyncio.to_thread(service.base_backup, bdir, backup_id, db.url)
        try:
            snapshot = await _snapshot(db, f"corp-astro-{backup_id}")
            meta["restore_point"] = snapshot["restore_point"]
            meta["restore_point_lsn"] = snapshot["lsn"]
            meta["database"] = facts.database
            meta["server_version_num"] = facts.version_num
            meta["wal_segment_size"] = facts.segment_size
            meta["archived_through"] = await _switch(db, "backup_full")
        except asyncpg.InsufficientPrivilegeError as exc:
            shutil.rmtree(bdir.backup(backup_id), ignore_errors=True)
            raise NotConfigured(f"{exc}: " + "\n".join(service.privilege_problems(facts))) from exc
        except BaseException:
            shutil.rmtree(bdir.backup(backup_id), ignore_errors=True)
            raise
        catalog.write_json(bdir.backup(backup_id) / "snapshot.json", snapshot)
        catalog.write_json(bdir.backup(backup_id) / "backup.json", meta)  # last: marks it complete
    _log.info("backup finished", extra={"backup_id": backup_id, "bytes": meta["size_bytes"]})
    return meta


async def _restored_stats(port: int, creds: dict[str, Any], tables: list[str]) -> dict[str, Any]:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, server_settings=repo.SNAPSHOT_SESSION, **creds)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            present = set(await repo.app_tables(conn))
            return {t: await repo.table_stats(conn, t) if t in present else None for t in tables}
    finally:
        await conn.close()


async def _check(bdir: BackupDir, backup: dict[str, Any], creds: dict[str, Any]) -> dict[str, Any]:
    """Restore ``backup`` to scratch at its restore point and compare every table with its snapshot."""
    snapshot = catalog.read_json(bdir.backup(backup["id"]) / "snapshot.json")
    await asyncio.to_thread(service.verify_manifest, bdir.backup(backup["id"]) / "data")
    scratch = bdir.root / "scratch" / backup["id"]
    shutil.rmtree(scratch.parent, ignore_errors=True)
    scratch.parent.mkdir(parents=True)
    started = time.monotonic()
    restored = await restore(bdir, Target(restore_point=snapshot["restore_point"]), scratch, creds)
    try:
        restore_s = time.monotonic() - started
        got = await _restored_stats(restored.server.port, creds, list(snapshot["tables"]))
    finally:
        await asyncio.to_thread(stop_server, restored.server)
        shutil.rmtree(scratch.parent, ignore_errors=True)
    mismatches = [
        {"table": t, "expected": want, "restored": got[t]}
        for t, want in snapshot["tables"].items()
        if got[t] != want
    ]
    return {"restore_seconds": round(restore_s, 3), "tables": len(got), "mismatches": mismatches}


async def verify(db: Database | None, bdir: BackupDir, creds: dict[str, Any]) -> dict[str, Any]:
    """Check the newest backup end to end; record the result (JSON, and audit_log when ``db`` is given);
    VerifyFailed if anything differs or cannot be restored."""
    backups = bdir.backups()
    if not backups:
        raise BackupError(f"no base backup in {bdir.base} to verify")
    backup = backups[-1]
    started = service.utcnow()
    result: dict[str, Any] = {"backup_id": backup["id"], "checked_at": started.isoformat()}
    try:
        result.update(await _check(bdir, backup, creds))
        result["ok"] = not result["mismatches"]
    except BackupError as exc:
        result.update(ok=False, error=exc.message)
    result["seconds"] = round((service.utcnow() - started).total_seconds(), 3)
    bdir.verify.mkdir(parents=True, exist_ok=True)
    catalog.write_json(bdir.verify / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json", result)
    catalog.write_json(bdir.verify / "latest.json", result)
    if db is not None:
        async with db.transaction() as conn:
            details = {k: result.get(k) for k in ("backup_id", "ok", "seconds", "error")}
            await audit.record(conn, "backup_verified", subject_id=backup["id"], details=details)
    if not result["ok"]:
        differ = ", ".join(m["table"] for m in result.get("mismatches", []))
        raise VerifyFailed(result.get("error") or f"restored backup differs from its snapshot in: {differ}")
    return result


async def locked_verify(db: Database, bdir: BackupDir, creds: dict[str, Any]) -> dict[str, Any]:
    """``verify`` under the backup jobs' single-runner lock."""
    async with _single_runner(db):
        return await verify(db, bdir, creds)


async def prune(db: Database, bdir: BackupDir, keep_days: int) -> dict[str, list[str]]:
    """Delete backups older than ``keep_days`` (never the newest) and the WAL no kept backup needs."""
    async with _single_runner(db):
        return service.prune(bdir, keep_days, service.utcnow())


async def _scheduled(kind: str, db: Database, bdir: BackupDir, creds: dict[str, Any]) -> None:
    try:
        if kind == "full":
            await full(db, bdir)
        else:
            await locked_verify(db, bdir, creds)
    except BackupBusy:
        _log.info("a backup job is already running elsewhere; skipped")
    except NotConfigured as exc:
        _log.warning("backup %s skipped: %s", kind, exc.message)
    except BackupError as exc:
        _log.error("backup %s failed: %s", kind, exc.message)


def register_jobs(scheduler: AsyncIOScheduler, app: Litestar) -> None:
    """A full backup daily at 02:15 UTC; a verify of the newest every Sunday at 04:45 UTC."""
    settings = app.state.settings
    args = {
        "db": app.state.db,
        "bdir": catalog.backup_dir(settings.data_dir),
        "creds": login(settings.database_url),
    }
    scheduler.add_job(
        _scheduled, "cron", hour=2, minute=15, kwargs={**args, "kind": "full"}, id="operations.backup_full"
    )
    scheduler.add_job(
        _scheduled,
        "cron",
        day_of_week="sun",
        hour=4,
        minute=45,
        kwargs={**args, "kind": "verify"},
        id="operations.backup_verify",
    )
