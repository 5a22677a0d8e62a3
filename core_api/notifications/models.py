"""Tables of the notifications domain (defined with the rest of the core schema in ``core_api.models``)."""

from __future__ import annotations

from core_api.models import Notification, ScheduledNotification

__all__ = ["Notification", "ScheduledNotification"]
