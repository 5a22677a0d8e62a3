"""Point-in-time restore: the newest base backup before the target, WAL replayed from the archive up to a
time (or a named restore point), the copy started read-only on a free 127.0.0.1 port.

The copy stays in recovery, paused at its target (``recovery_target_action = 'pause'``): a hot standby,
read-only by construction, on the old timeline, archiving nothing. ``SELECT pg_wal_replay_resume()`` (or
``pg_promote()``) turns it into a writable server if the operator wants one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from operations import catalog
from operations.catalog import BackupDir
from operations.errors import NoBackup, RestoreFailed, TargetOutOfRange
from operations.pgtools import ServerProcess, give_to_server_user, start_server, stop_server

__all__ = ["Restored", "Target", "choose_backup", "restore", "wait_until_paused"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where to stop replaying: a time, or a restore point written by ``backup full``."""

    time: dt.datetime | None = None
    restore_point: str | None = None

    def settings(self) -> dict[str, str]:
        if self.restore_point is not None:
            return {"recovery_target_name": self.restore_point}
        assert self.time is not None
        return {"recovery_target_time": self.time.isoformat(), "recovery_target_inclusive": "on"}


@dataclass(frozen=True, slots=True)
class Restored:
    """A restored server running read-only, the backup it came from, and where its replay stopped."""

    server: ServerProcess
    backup: dict[str, Any]
    stopped_at: str | None  # the last replayed transaction's time
    stop_line: str | None  # PostgreSQL's own "recovery stopping before ..." log line


def choose_backup(bdir: BackupDir, target: Target) -> dict[str, Any]:
    """The newest base backup finished before the target time (or the one that wrote the restore point),
    whose archived WAL runs without a gap; TargetOutOfRange if the WAL does not reach the target."""
    backups = bdir.backups()
    if not backups:
        raise NoBackup(f"no base backup in {bdir.base}: run `corp-astro backup full` first")
    if target.restore_point is not None:
        named = [b for b in backups if b.get("restore_point") == target.restore_point]
        if not named:
            raise NoBackup(f"no backup wrote restore point {target.restore_point}")
        return named[-1]
    assert target.time is not None
    before = [b for b in backups if dt.datetime.fromisoformat(b["finished_at"]) <= target.time]
    if not before:
        raise TargetOutOfRange(
            f"{target.time.isoformat()} is before the oldest backup, which finished at "
            f"{backups[0]['finished_at']}"
        )
    backup = before[-1]
    _check_reach(bdir, backup, target.time)
    return backup


def _check_reach(bdir: BackupDir, backup: dict[str, Any], when: dt.datetime) -> None:
    """TargetOutOfRange unless the archived WAL from ``backup`` on holds a commit at or after ``when``
    (recovery to a time stops at the first commit past it, and fails if there is none)."""
    segments = bdir.segments()
    cov = catalog.coverage(segments, backup["start_wal"])
    upto = segments[: segments.index(cov.last) + 1] if cov.last in segments else []
    last_commit = catalog.last_commit_time(bdir.wal, upto) if upto else None
    if last_commit is None or when > last_commit:
        gap = f"; the archive has a gap after {cov.gaps[0][0]}" if cov.gaps else ""
        raise TargetOutOfRange(
            f"{when.isoformat()} is past the end of the archived WAL: the newest archived commit "
            f"is at {last_commit.isoformat() if last_commit else 'none'} (segment {cov.last}){gap}. "
            "Run `corp-astro backup switch-wal` to archive what the server has written since, or choose "
            "an earlier time."
        )


_MISSING_CONF = {
    "postgresql.conf": "# corp-astro backup restore: the original's was outside its data directory\n",
    "pg_hba.conf": "host all all 127.0.0.1/32 scram-sha-256\n",
    "pg_ident.conf": "",
}


def _conf_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _prepare(bdir: BackupDir, backup: dict[str, Any], target: Target, datadir: Path) -> None:
    """Copy the base backup to ``datadir`` and write the recovery settings."""
    if datadir.exists() and any(datadir.iterdir()):
        raise RestoreFailed(f"the target directory {datadir} is not empty")
    if datadir.exists():
        datadir.rmdir()
    shutil.copytree(bdir.backup(backup["id"]) / "data", datadir, symlinks=True)
    for leftover in ("log", "postmaster.opts", "standby.signal"):
        (datadir / leftover).unlink(missing_ok=True)
    # Packaged servers (Debian's /etc/postgresql/...) keep these outside the data directory, so a base
    # backup lacks them: the copy gets a minimal set (password logins from 127.0.0.1 only).
    for name, text in _MISSING_CONF.items():
        if not (datadir / name).exists():
            (datadir / name).write_text(text)
    wal = str(bdir.wal)
    settings = {
        **target.settings(),
        "restore_command": f"cp '{wal}/%f' %p",
        "recovery_target_action": "pause",
        "archive_mode": "off",  # the copy must never ship WAL into the original's archive
        "default_transaction_read_only": "on",
        "hot_standby": "on",
    }
    with (datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# corp-astro backup restore\n")
        conf.writelines(f"{k} = {_conf_literal(v)}\n" for k, v in settings.items())
    (datadir / "recovery.signal").touch()
    datadir.chmod(0o700)
    give_to_server_user(datadir)


def _log_tail(log: Path, lines: int = 12) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop_line(log: Path) -> str | None:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = [ln for ln in text.splitlines() if "recovery stopping" in ln or "pausing at the end" in ln]
    return found[0].split("LOG:", 1)[-1].strip() if found else None


async def wait_until_paused(server: ServerProcess, conn_kwargs: dict[str, Any], timeout: float) -> str | None:
    """Wait until replay has paused at its target; the last replayed transaction's time. RestoreFailed
    with the server's own log lines if it stops (the target was not reached) or takes too long."""
    deadline = asyncio.get_running_loop().time() + timeout
    from operations.repository import replay_state

    while asyncio.get_running_loop().time() < deadline:
        if not server.alive():
            raise RestoreFailed(
                "the restored server stopped before reaching its target:\n" + _log_tail(server.log)
            )
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=server.port, timeout=5, **conn_kwargs)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.2)
            continue
        try:
            in_recovery, state, replayed = await replay_state(conn)
        finally:
            await conn.close()
        if not in_recovery or state == "paused":
            return replayed
        await asyncio.sleep(0.2)
    raise RestoreFailed(f"replay did not reach its target within {timeout:.0f} s:\n" + _log_tail(server.log))


async def restore(
    bdir: BackupDir, target: Target, datadir: Path, conn_kwargs: dict[str, Any], *, timeout: float = 3600
) -> Restored:
    """Restore to ``target`` into ``datadir`` and start it read-only; the caller stops it (by pid)."""
    backup = choose_backup(bdir, target)
    _prepare(bdir, backup, target, datadir)
    server = await asyncio.to_thread(start_server, datadir, datadir.parent / f"{datadir.name}.log")
    if not server.alive():
        raise RestoreFailed("the restored server did not start:\n" + _log_tail(server.log))
    try:
        stopped_at = await wait_until_paused(server, conn_kwargs, timeout)
    except BaseException:
        await asyncio.to_thread(stop_server, server)
        raise
    return Restored(server, backup, stopped_at, _stop_line(server.log))
