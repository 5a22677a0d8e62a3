"""What the backup directory says about the last full backup and the last verify, for ``/metrics``
(``corp_astro_backup_last_success_timestamp_seconds``, ``corp_astro_backup_verify_last_result``) and
anything else that must not run PostgreSQL's programs to know."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from operations.catalog import backup_dir

__all__ = ["BackupStatus", "backup_status"]


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """The newest completed base backup's finish time and the last verify's outcome (None: never)."""

    last_full_at: dt.datetime | None
    last_verify_at: dt.datetime | None
    last_verify_ok: bool | None

    @property
    def last_full_timestamp(self) -> float | None:
        """Unix time of the last successful ``backup full``."""
        return self.last_full_at.timestamp() if self.last_full_at else None


def backup_status(data_dir: Path, directory: Path | None = None) -> BackupStatus:
    """Read ``base/*/backup.json`` and ``verify/latest.json``; cheap (no PostgreSQL program is run)."""
    bdir = backup_dir(data_dir, directory)
    backups = bdir.backups()
    last_full = dt.datetime.fromisoformat(backups[-1]["finished_at"]) if backups else None
    try:
        latest = json.loads((bdir.verify / "latest.json").read_text())
    except (OSError, ValueError):
        return BackupStatus(last_full, None, None)
    return BackupStatus(last_full, dt.datetime.fromisoformat(latest["checked_at"]), bool(latest["ok"]))
