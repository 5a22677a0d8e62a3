"""Errors of the notifications domain."""

from __future__ import annotations

from kernel.errors import ConflictError, NotFoundError

__all__ = ["NotificationNotFoundError", "ScheduleNotFoundError", "ScheduleNotPendingError"]


class NotificationNotFoundError(NotFoundError):
    """No such notification (or it belongs to someone else)."""

    code = "notification_not_found"


class ScheduleNotFoundError(NotFoundError):
    """No such scheduled notification (or it belongs to someone else)."""

    code = "scheduled_notification_not_found"


class ScheduleNotPendingError(ConflictError):
    """The scheduled notification was already sent or cancelled."""

    code = "not_pending"
