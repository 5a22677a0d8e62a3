"""Operations domain: backups with point-in-time recovery and verified restores (``corp-astro backup``).

It owns no table. It drives PostgreSQL's own programs (``pg_basebackup``, ``pg_verifybackup``,
``pg_waldump``, ``pg_ctl``) and WAL archiving through ``archive_command``; docs/operations.md is the
runbook and docs/scale-out.md the plan past one node. ``backup_status`` is the public read of the backup
directory (the last full backup, the last verify) for metrics and health.
"""

from __future__ import annotations

from operations.status import BackupStatus, backup_status

__all__ = ["BackupStatus", "backup_status"]
