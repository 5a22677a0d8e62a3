"""The push-provider interface the delivery job hands notifications to, and its default.

The default provider only records the push in the log: no network is used. A real provider (APNs,
FCM) implements ``PushProvider`` and is installed as ``app.state.push_provider`` before startup.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LoggingPushProvider", "PushMessage", "PushProvider", "PushTarget"]

_log = logging.getLogger("corp_astro.push")


@dataclass(frozen=True, slots=True)
class PushTarget:
    """One active device of the recipient."""

    device_id: uuid.UUID
    platform: str
    device_token: str


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A notification to push to every active device of its user."""

    notification_id: uuid.UUID
    schedule_id: uuid.UUID | None
    user_id: uuid.UUID
    title: str
    body: str
    data: dict[str, Any]
    targets: tuple[PushTarget, ...]


class PushProvider(Protocol):
    """Sends pushes. ``send`` returns True when the provider accepted the message."""

    async def send(self, message: PushMessage) -> bool:
        """Hand ``message`` to the push service."""
        ...


class LoggingPushProvider:
    """The default provider: one log line per push, no network. Device tokens are not logged."""

    async def send(self, message: PushMessage) -> bool:
        """Record the push in the log."""
        _log.info(
            "push sent",
            extra={
                "notification_id": str(message.notification_id),
                "schedule_id": str(message.schedule_id) if message.schedule_id else None,
                "user_id": str(message.user_id),
                "devices": [str(t.device_id) for t in message.targets],
                "pid": os.getpid(),
            },
        )
        return True
