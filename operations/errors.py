"""Operations errors: each message says what is missing and how to fix it."""

from __future__ import annotations

from kernel.errors import ConflictError, DomainError, NotFoundError, ValidationError

__all__ = [
    "BackupBusy",
    "BackupError",
    "NoBackup",
    "NotConfigured",
    "RestoreFailed",
    "TargetOutOfRange",
    "ToolMissing",
    "VerifyFailed",
]


class BackupError(DomainError):
    """A backup step failed; the message carries PostgreSQL's own words."""

    code = "backup_failed"


class ToolMissing(BackupError):
    """A PostgreSQL program the command needs is not installed."""

    code = "backup_tool_missing"


class NotConfigured(BackupError):
    """WAL archiving is not set up, or the database role lacks a privilege the step needs."""

    code = "backup_not_configured"


class NoBackup(NotFoundError):
    """No base backup fits the request."""

    code = "backup_not_found"


class TargetOutOfRange(ValidationError):
    """The restore target lies outside the window the backups and the archived WAL can reach."""

    code = "restore_target_out_of_range"


class RestoreFailed(BackupError):
    """The restored server did not start or did not reach its target."""

    code = "restore_failed"


class VerifyFailed(BackupError):
    """A restored backup does not match the snapshot taken when it was made."""

    code = "backup_verify_failed"


class BackupBusy(ConflictError):
    """Another process is running a backup job right now."""

    code = "backup_busy"
