"""Notifications: the inbox (list, unread count, mark read) and scheduled notifications delivered
exactly once by a job, through a push-provider interface."""

from __future__ import annotations

from core_api.notifications.service import notify, notify_many

__all__ = ["notify", "notify_many"]
