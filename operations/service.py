"""Backups: what archiving needs, the base backup and its checks, list and prune.

Nothing here opens a transaction; ``operations.jobs`` (the boundary) holds the connections.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operations import catalog
from operations.catalog import BackupDir
from operations.errors import BackupError, NotConfigured
from operations.pgtools import give_to_server_user, run_tool
from operations.repository import ServerFacts

__all__ = [
    "ArchivePlan",
    "archive_command",
    "archive_plan",
    "base_backup",
    "listing",
    "privilege_problems",
    "prune",
    "utcnow",
]

# The hourly incremental of the seed: a segment is closed and archived at least this often.
ARCHIVE_TIMEOUT_S = 3600


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def archive_command(wal_dir: Path) -> str:
    """A /bin/sh archive_command: never overwrites a segment (an identical copy counts as archived), and
    copies under a temporary name first, so a crash never leaves a half segment under the real name."""
    path = str(wal_dir)
    if "'" in path or "%" in path:
        raise BackupError(f"the archive path must not contain ' or %: {path}")
    dest = f"'{path}/%f'"
    return f"if test -f {dest}; then cmp -s %p {dest}; else cp %p '{path}/%f.tmp' && mv '{path}/%f.tmp' {dest}; fi"


@dataclass(slots=True)
class ArchivePlan:
    """The settings archiving needs, those that differ now, and whether applying them needs a restart."""

    wanted: dict[str, str]
    changes: dict[str, str] = field(default_factory=dict)
    restart: bool = False
    note: str | None = None  # what the operator must arrange that the command could not

    def lines(self) -> list[str]:
        quoted = {name: value.replace("'", "''") for name, value in self.wanted.items()}
        return [f"{name} = '{value}'" for name, value in quoted.items()]


def archive_plan(facts: ServerFacts, wal_dir: Path) -> ArchivePlan:
    """Compare the server's archiving settings with what ``wal_dir`` needs."""
    wanted = {
        "wal_level": "replica" if facts.settings.get("wal_level") != "logical" else "logical",
        "archive_mode": "on",
        "archive_command": archive_command(wal_dir),
        "archive_timeout": str(ARCHIVE_TIMEOUT_S),
    }
    plan = ArchivePlan(wanted)
    for name, value in wanted.items():
        current = facts.settings.get(name)
        if name == "archive_mode" and current == "always":
            continue
        if current != value:
            plan.changes[name] = value
    plan.restart = bool({"wal_level", "archive_mode"} & (set(plan.changes) | facts.pending_restart))
    return plan


def privilege_problems(facts: ServerFacts) -> list[str]:
    """What the role lacks to take base backups, each with the statement that grants it."""
    if facts.superuser:
        return []
    problems = []
    if not facts.replication:
        problems.append(
            f"role {facts.user} lacks REPLICATION (pg_basebackup): ALTER ROLE {facts.user} REPLICATION; "
            "and allow it in pg_hba.conf: host replication <role> <address> scram-sha-256"
        )
    problems.append(
        f"role {facts.user} needs pg_switch_wal, pg_create_restore_point and pg_export_snapshot: "
        f"GRANT EXECUTE ON FUNCTION pg_switch_wal(), pg_create_restore_point(text) TO {facts.user};"
    )
    return problems


def _label_field(label: str, name: str) -> str:
    match = re.search(rf"^{name}: (.*)$", label, re.MULTILINE)
    if match is None:
        raise BackupError(f"backup_label has no {name}")
    return match.group(1).strip()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def base_backup(bdir: BackupDir, backup_id: str, url: str) -> dict[str, Any]:
    """pg_basebackup (plain format, WAL streamed in, fast checkpoint, a CRC32C manifest) checked with
    pg_verifybackup; the backup's metadata (not yet written: the caller adds the snapshot first)."""
    target = bdir.backup(backup_id) / "data"
    target.parent.mkdir(parents=True, exist_ok=False)
    started = utcnow()
    try:
        run_tool(
            "pg_basebackup",
            [
                "-d",
                url,
                "-D",
                str(target),
                "-Fp",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-password",
                "--manifest-checksums=CRC32C",
                "-l",
                f"corp-astro {backup_id}",
            ],
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(bdir.backup(backup_id), ignore_errors=True)
        raise BackupError(f"pg_basebackup failed: {exc.stderr.strip()}") from exc
    finished = utcnow()
    verify_manifest(target)
    label = (target / "backup_label").read_text()
    manifest = catalog.read_json(target / "backup_manifest")
    wal_range = manifest["WAL-Ranges"][-1]
    start_wal = re.search(r"file ([0-9A-F]{24})", _label_field(label, "START WAL LOCATION"))
    assert start_wal is not None
    return {
        "id": backup_id,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "seconds": round((finished - started).total_seconds(), 3),
        "timeline": wal_range["Timeline"],
        "start_lsn": wal_range["Start-LSN"],
        "stop_lsn": wal_range["End-LSN"],
        "start_wal": start_wal.group(1),
        "size_bytes": _size(target),
        "manifest_verified": True,
    }


def verify_manifest(data: Path) -> None:
    """pg_verifybackup: every file against the manifest's size and CRC32C, and the WAL it needs."""
    try:
        run_tool("pg_verifybackup", ["--quiet", str(data)])
    except subprocess.CalledProcessError as exc:
        lines = [ln for ln in (exc.stderr or "").splitlines() if ln.strip()]
        raise BackupError(f"pg_verifybackup found {data} damaged: " + "; ".join(lines[:5])) from exc


def prepare_archive(bdir: BackupDir, data_directory: str | None) -> str | None:
    """Create the backup directory. The WAL directory must be writable by the server's OS user: when the
    server's data directory is on this machine, the WAL directory is given to its owner; otherwise a note
    on what the operator must arrange."""
    bdir.wal.mkdir(parents=True, exist_ok=True)
    bdir.base.mkdir(parents=True, exist_ok=True)
    datadir = Path(data_directory) if data_directory else None
    if datadir is None or not datadir.is_dir():
        return (
            f"the server's data directory is not on this machine: {bdir.wal} must exist on the database "
            "server, writable by its OS user (or give `backup init --dir` a path the server can write)"
        )
    give_to_server_user(bdir.wal, owner_of=datadir)
    return None


def require_archiving(facts: ServerFacts, bdir: BackupDir) -> None:
    """NotConfigured unless the server archives into ``bdir`` now."""
    plan = archive_plan(facts, bdir.wal)
    missing = {k: v for k, v in plan.changes.items() if k != "archive_timeout"}
    if missing or facts.pending_restart & {"archive_mode", "wal_level"}:
        raise NotConfigured(
            f"WAL archiving into {bdir.wal} is not active; run `corp-astro backup init` "
            f"(settings still to apply: {', '.join(sorted(missing)) or 'a restart'})"
        )


def listing(bdir: BackupDir) -> dict[str, Any]:
    """Backups, WAL coverage and gaps from the oldest backup on, and the window a restore can reach."""
    backups = bdir.backups()
    segments = bdir.segments()
    out: dict[str, Any] = {"backups": backups, "wal_segments": len(segments), "gaps": [], "window": None}
    if segments:
        out["wal_first"], out["wal_last"] = segments[0], segments[-1]
    if not backups:
        return out
    cov = catalog.coverage(segments, backups[0]["start_wal"])
    out["gaps"] = [list(g) for g in cov.gaps]
    # Restorable from the oldest backup whose WAL runs without a gap to the newest segment, up to the
    # newest archived commit (recovery to a time needs a commit at or after it).
    reachable = [b for b in backups if catalog.coverage(segments, b["start_wal"]).complete]
    if reachable:
        end = catalog.last_commit_time(bdir.wal, segments)
        out["window"] = {"from": reachable[0]["finished_at"], "to": end.isoformat() if end else None}
    return out


def prune(bdir: BackupDir, keep_days: int, now: dt.datetime) -> dict[str, list[str]]:
    """Delete base backups finished more than ``keep_days`` ago (never the newest) and the WAL older than
    the oldest backup kept; what was deleted."""
    backups = bdir.backups()
    cutoff = now - dt.timedelta(days=keep_days)
    old = [b for b in backups[:-1] if dt.datetime.fromisoformat(b["finished_at"]) < cutoff]
    kept = [b for b in backups if b not in old]
    for b in old:
        shutil.rmtree(bdir.backup(b["id"]))
    removed_wal: list[str] = []
    if kept:
        first = catalog.segment_number(kept[0]["start_wal"])
        for name in bdir.segments():
            if catalog.segment_number(name) < first:
                (bdir.wal / name).unlink()
                removed_wal.append(name)
    return {"backups": [b["id"] for b in old], "wal": removed_wal}
