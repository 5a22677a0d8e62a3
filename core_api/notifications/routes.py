"""HTTP routes of the notifications domain: ``/v1/notifications`` and ``/v1/scheduled-notifications``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Litestar, delete, get, post
from litestar.params import FromQuery, QueryParameter

from core_api.notifications import service
from core_api.notifications.push import LoggingPushProvider
from core_api.notifications.schemas import (
    NotificationOut,
    ReadAllResult,
    ScheduledCreate,
    ScheduledOut,
    ScheduleStatus,
    UnreadCount,
)
from kernel.deps import CurrentUser, DbConn
from kernel.owned import get_route, route
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import NO_NUL, ResourceController

__all__ = ["on_startup", "route_handlers"]

TypeParam = Annotated[str | None, QueryParameter(name="type", max_length=50, pattern=NO_NUL)]


class NotificationsController(ResourceController):
    """The caller's notifications inbox. Admins may read everyone's."""

    path = "/v1/notifications"
    tags = ["notifications"]

    @get("/", summary="List notifications")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        unread: FromQuery[bool | None] = None,
        type_: TypeParam = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[NotificationOut]:
        """Newest first; ``unread=true`` keeps unread ones, ``type`` one type."""
        return await service.list_notifications(
            conn, current_user, user_id=user_id, unread=unread, type_=type_, cursor=cursor, limit=limit
        )

    @get("/unread-count", summary="How many notifications are unread")
    async def unread_count(self, conn: DbConn, current_user: CurrentUser) -> UnreadCount:
        """The caller's unread count."""
        return UnreadCount(unread=await service.count_unread(conn, current_user))

    @post("/read-all", status_code=200, summary="Mark every notification read")
    async def read_all(self, conn: DbConn, current_user: CurrentUser) -> ReadAllResult:
        """Marks all the caller's unread notifications read."""
        return ReadAllResult(updated=await service.mark_all_read(conn, current_user))

    @get_route(service.inbox, "/{notification_id:uuid}")
    def get_one(self) -> None:
        """A notification

        One notification (404 if it is someone else's).
        """

    @route(post, "/{notification_id:uuid}/read", service.mark_read, None, NotificationOut, status_code=200)
    def mark_read(self) -> None:
        """Mark a notification read

        Sets ``read`` and ``read_at`` (kept from the first time).
        """


class ScheduledNotificationsController(ResourceController):
    """Notifications the caller scheduled for later. Admins may read everyone's."""

    path = "/v1/scheduled-notifications"
    tags = ["notifications"]

    @route(post, "/", service.schedules.add, ScheduledCreate, ScheduledOut)
    def create(self) -> None:
        """Schedule a notification

        A notification for the caller at ``scheduled_time`` (in the future, within two years).
        """

    @get("/", summary="List scheduled notifications")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        status: FromQuery[ScheduleStatus | None] = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[ScheduledOut]:
        """Soonest first, optionally of one ``status``."""
        return await service.list_schedules(
            conn, current_user, user_id=user_id, status=status, cursor=cursor, limit=limit
        )

    @get_route(service.schedules, "/{schedule_id:uuid}")
    def get_one(self) -> None:
        """A scheduled notification

        One scheduled notification (404 if it is someone else's).
        """

    @route(post, "/{schedule_id:uuid}/cancel", service.cancel_schedule, None, ScheduledOut, status_code=200)
    def cancel(self) -> None:
        """Cancel a scheduled notification

        Cancel a pending one; 409 if it was already sent or cancelled.
        """

    @route(delete, "/{schedule_id:uuid}", service.cancel_schedule)
    def remove(self) -> None:
        """Cancel a scheduled notification

        The same as ``POST .../cancel`` (the row is kept with ``status`` = cancelled).
        """


async def on_startup(app: Litestar) -> None:
    """Install the default push provider unless one was installed already."""
    if getattr(app.state, "push_provider", None) is None:
        app.state.push_provider = LoggingPushProvider()


route_handlers: list[Any] = [NotificationsController, ScheduledNotificationsController]
