"""The backup directory's bookkeeping: WAL coverage and gaps, prune, archive_command, the schedule."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from operations import catalog, jobs, service
from operations.catalog import BackupDir

SEG = [f"00000001000000{hi:02X}000000{lo:02X}" for hi in (0, 1) for lo in (0xFD, 0xFE, 0xFF)]


def test_segment_numbers_run_across_log_ids() -> None:
    # 16 MB segments: 0x100 per log id, so ...00FF is followed by ...0100000000 (next id, segment 0).
    assert (
        catalog.segment_number("000000010000000100000000")[1]
        == catalog.segment_number("0000000100000000000000FF")[1] + 1
    )
    names = ["0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"]
    assert catalog.coverage(names, names[0]).complete


def test_coverage_reports_each_gap_and_stops_the_run_at_the_first() -> None:
    names = ["000000010000000000000002", "000000010000000000000003", "000000010000000000000005"]
    names.append("000000010000000000000009")
    cov = catalog.coverage(names, "000000010000000000000002")
    assert cov.last == "000000010000000000000003"
    assert cov.gaps == [
        ("000000010000000000000003", "000000010000000000000005"),
        ("000000010000000000000005", "000000010000000000000009"),
    ]
    assert not cov.complete
    # The backup's own first segment missing: nothing from it can be restored.
    assert catalog.coverage(names[1:], "000000010000000000000002").last is None


def _backup(bdir: BackupDir, backup_id: str, finished: dt.datetime, start_wal: str) -> None:
    path = bdir.backup(backup_id)
    (path / "data").mkdir(parents=True)
    meta = {"id": backup_id, "finished_at": finished.isoformat(), "start_wal": start_wal, "size_bytes": 1}
    (path / "backup.json").write_text(json.dumps(meta))


def test_prune_keeps_the_newest_backup_and_the_wal_it_needs(tmp_path: Path) -> None:
    bdir = BackupDir(tmp_path)
    bdir.wal.mkdir(parents=True)
    for name in SEG:
        (bdir.wal / name).write_bytes(b"x")
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    _backup(bdir, "old", now - dt.timedelta(days=10), SEG[0])
    _backup(bdir, "mid", now - dt.timedelta(days=5), SEG[2])
    _backup(bdir, "new", now - dt.timedelta(days=1), SEG[4])
    (bdir.base / "unfinished").mkdir()  # no backup.json: an interrupted run, never listed

    assert service.prune(bdir, 7, now) == {"backups": ["old"], "wal": SEG[:2]}
    assert [b["id"] for b in bdir.backups()] == ["mid", "new"]
    assert bdir.segments() == SEG[2:]
    # Even a window of 0 days keeps the newest backup.
    assert service.prune(bdir, 0, now)["backups"] == ["mid"]
    assert [b["id"] for b in bdir.backups()] == ["new"]
    assert bdir.segments() == SEG[4:]


def test_archive_command_never_overwrites_and_accepts_an_identical_copy(tmp_path: Path) -> None:
    wal, pg_wal = tmp_path / "archive", tmp_path / "pg_wal"
    wal.mkdir()
    pg_wal.mkdir()
    segment = pg_wal / "000000010000000000000001"
    segment.write_bytes(b"wal bytes")
    command = service.archive_command(wal).replace("%p", str(segment)).replace("%f", segment.name)

    def archive() -> int:
        return subprocess.run(["/bin/sh", "-c", command], check=False).returncode

    assert archive() == 0
    assert (wal / segment.name).read_bytes() == b"wal bytes"
    assert archive() == 0  # archived again after a crash: the same bytes, success
    segment.write_bytes(b"other bytes")
    assert archive() != 0  # never replaces a different segment of the same name
    assert (wal / segment.name).read_bytes() == b"wal bytes"
    assert not list(wal.glob("*.tmp"))


def test_jobs_are_scheduled_daily_and_weekly(tmp_path: Path) -> None:
    scheduler = AsyncIOScheduler(timezone="UTC")
    settings = SimpleNamespace(data_dir=tmp_path, database_url=None)
    app = SimpleNamespace(state=SimpleNamespace(db=object(), settings=settings))
    jobs.register_jobs(scheduler, app)  # type: ignore[arg-type]
    by_id = {job.id: str(job.trigger) for job in scheduler.get_jobs()}
    assert by_id == {
        "operations.backup_full": "cron[hour='2', minute='15']",
        "operations.backup_verify": "cron[day_of_week='sun', hour='4', minute='45']",
    }


def test_backup_status_reads_the_newest_backup_and_the_last_verify(tmp_path: Path) -> None:
    from operations import backup_status

    root = tmp_path / "backups"
    assert backup_status(tmp_path, root).last_full_timestamp is None
    bdir = BackupDir(root)
    finished = dt.datetime(2026, 11, 30, 2, 15, tzinfo=dt.UTC)
    _backup(bdir, "a", finished - dt.timedelta(days=1), SEG[0])
    _backup(bdir, "b", finished, SEG[1])
    status = backup_status(tmp_path, root)
    assert status.last_full_timestamp == finished.timestamp()
    assert status.last_verify_ok is None
    bdir.verify.mkdir()
    checked = "2026-11-30T04:45:00+00:00"
    catalog.write_json(bdir.verify / "latest.json", {"checked_at": checked, "ok": False})
    assert backup_status(tmp_path, root).last_verify_ok is False
