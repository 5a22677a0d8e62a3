"""The backup directory: base backups with their metadata and snapshot, the WAL archive, its gaps and
the window a restore can reach.

Layout (``.data/backups`` by default)::

    wal/<segment>                    archived by the server's archive_command
    base/<id>/data/                  pg_basebackup -Fp output, backup_manifest included
    base/<id>/backup.json            when, which WAL, its size, pg_verifybackup's verdict
    base/<id>/snapshot.json          row count and checksum per table, at a named restore point
    verify/<time>.json, latest.json  each ``backup verify`` result
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operations.pgtools import run_tool

__all__ = [
    "BackupDir",
    "Coverage",
    "backup_dir",
    "coverage",
    "last_commit_time",
    "read_json",
    "segment_number",
    "write_json",
]

_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class BackupDir:
    """Paths inside one backup directory."""

    root: Path

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def verify(self) -> Path:
        return self.root / "verify"

    def backup(self, backup_id: str) -> Path:
        return self.base / backup_id

    def backups(self) -> list[dict[str, Any]]:
        """Every completed base backup's metadata, oldest first (one without backup.json is unfinished)."""
        if not self.base.is_dir():
            return []
        found = [read_json(p / "backup.json") for p in self.base.iterdir() if (p / "backup.json").is_file()]
        return sorted(found, key=lambda b: str(b["finished_at"]))

    def segments(self) -> list[str]:
        """Archived WAL segment names, in WAL order."""
        if not self.wal.is_dir():
            return []
        return sorted(p.name for p in self.wal.iterdir() if _SEGMENT.match(p.name))


def backup_dir(data_dir: Path, given: Path | None = None) -> BackupDir:
    """``given``, else ``CORP_ASTRO_BACKUP_DIR``, else ``<data dir>/backups``."""
    env = os.environ.get("CORP_ASTRO_BACKUP_DIR")
    root = given or (Path(env) if env else data_dir / "backups")
    return BackupDir(root.resolve())


def segment_number(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name."""
    per_id = 0x1_0000_0000 // segment_size
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:], 16)


@dataclass(frozen=True, slots=True)
class Coverage:
    """The archive from a base backup's first segment on: contiguous up to ``last``, then ``gaps``."""

    first: str
    last: str | None
    gaps: list[tuple[str, str]]  # (last segment before the gap, first segment after it)

    @property
    def complete(self) -> bool:
        return self.last is not None and not self.gaps


def coverage(segments: list[str], first: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Coverage:
    """Whether ``segments`` hold every segment from ``first`` on, where the run stops, and its gaps."""
    tli, start = segment_number(first, segment_size)
    later = [s for s in segments if segment_number(s, segment_size)[0] == tli]
    later = [s for s in later if segment_number(s, segment_size)[1] >= start]
    if not later or segment_number(later[0], segment_size)[1] != start:
        return Coverage(first, None, [("(before)", later[0])] if later else [])
    last, gaps = later[0], []
    for name in later[1:]:
        if segment_number(name, segment_size)[1] != segment_number(last, segment_size)[1] + 1:
            gaps.append((last, name))
        last = name
    run_end = gaps[0][0] if gaps else last
    return Coverage(first, run_end, gaps)


def last_commit_time(wal_dir: Path, segments: list[str], *, look_back: int = 8) -> dt.datetime | None:
    """The time of the newest transaction commit (or abort) in the archived ``segments``: the latest
    time recovery can be sure to reach. Reads the newest segments with pg_waldump, newest first."""
    for name in reversed(segments[-look_back:]):
        try:
            out = run_tool("pg_waldump", ["--path", str(wal_dir), "--rmgr=Transaction", name], timeout=120)
        except subprocess.CalledProcessError as exc:
            # pg_waldump exits 1 at the zeroed tail of a switched segment, after printing its records.
            out = exc.stdout or ""
        times = _COMMIT.findall(out)
        if times:
            return dt.datetime.fromisoformat(times[-1]).replace(tzinfo=dt.UTC)
    return None
