"""Logic for the resources a user owns under ``/v1/users/me``: preferences, devices, subscriptions.

Split from ``service.py`` (accounts and authentication) to keep each module short. Every query is
scoped to the owner, so another user's id is simply not found.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from core_api.accounts import repository as repo
from core_api.accounts.errors import (
    DeviceNotFoundError,
    DeviceTokenTakenError,
    SubscriptionNotFoundError,
    UserNotFoundError,
)
from core_api.accounts.schemas import (
    DeviceOut,
    DeviceRegister,
    DeviceUpdate,
    PreferencesOut,
    PreferencesUpdate,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
)
from kernel.db import uuid7
from kernel.errors import ValidationError
from kernel.pagination import Page, decode_cursor, make_page
from kernel.resources import changes, to_struct

__all__ = [
    "create_subscription",
    "deactivate_device",
    "get_device",
    "get_preferences",
    "get_subscription",
    "list_devices",
    "list_subscriptions",
    "put_preferences",
    "register_device",
    "update_device",
    "update_subscription",
]

_Key = tuple[dt.datetime, uuid.UUID]


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None)


# --- Preferences ---------------------------------------------------------------------------------


async def get_preferences(conn: asyncpg.Connection, user_id: uuid.UUID) -> PreferencesOut:
    """The caller's preferences; the seed's defaults when none were saved yet."""
    row = await repo.get_preferences(conn, user_id)
    if row is None:
        return PreferencesOut(
            preference_id=None,
            user_id=user_id,
            notification_preferences={},
            theme_preferences={},
            language="en",
            timezone="UTC",
            created_at=None,
            updated_at=None,
        )
    return to_struct(PreferencesOut, row)


async def put_preferences(
    conn: asyncpg.Connection, user_id: uuid.UUID, data: PreferencesUpdate
) -> PreferencesOut:
    """Store the given preference fields (the others keep their value)."""
    row = await repo.upsert_preferences(conn, uuid7(), user_id, changes(data))
    return to_struct(PreferencesOut, row)


# --- Devices -------------------------------------------------------------------------------------


async def register_device(
    conn: asyncpg.Connection, user_id: uuid.UUID, data: DeviceRegister
) -> tuple[DeviceOut, bool]:
    """Register a push token, or refresh it (reactivate, new versions); (device, created)."""
    row, created = await repo.upsert_device(conn, uuid7(), user_id, changes(data))
    return to_struct(DeviceOut, row), created


async def list_devices(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[DeviceOut]:
    """The caller's devices, newest first."""
    rows = await repo.list_devices(conn, user_id, after=decode_cursor(cursor, _Key), limit=limit)
    items = [to_struct(DeviceOut, r) for r in rows]
    return make_page(items, limit, lambda d: (_naive(d.created_at), d.device_id))


async def get_device(conn: asyncpg.Connection, user_id: uuid.UUID, device_id: uuid.UUID) -> DeviceOut:
    """One of the caller's devices."""
    row = await repo.get_device(conn, device_id, user_id)
    if row is None:
        raise DeviceNotFoundError("No such device.")
    return to_struct(DeviceOut, row)


async def update_device(
    conn: asyncpg.Connection, user_id: uuid.UUID, device_id: uuid.UUID, data: DeviceUpdate
) -> DeviceOut:
    """Change one of the caller's devices."""
    try:
        async with conn.transaction():
            row = await repo.update_device(conn, device_id, user_id, changes(data))
    except asyncpg.UniqueViolationError as exc:
        raise DeviceTokenTakenError("Another of your devices has this push token.") from exc
    if row is None:
        raise DeviceNotFoundError("No such device.")
    return to_struct(DeviceOut, row)


async def deactivate_device(conn: asyncpg.Connection, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
    """Stop pushing to one of the caller's devices (the row is kept, ``active`` = false)."""
    if not await repo.deactivate_device(conn, device_id, user_id):
        raise DeviceNotFoundError("No such device.")


# --- Subscriptions -------------------------------------------------------------------------------


async def list_subscriptions(
    conn: asyncpg.Connection, owner: uuid.UUID | None, *, cursor: str | None, limit: int
) -> Page[SubscriptionOut]:
    """Subscriptions of ``owner`` (everyone's when None), newest first."""
    rows = await repo.list_subscriptions(conn, owner, after=decode_cursor(cursor, _Key), limit=limit)
    items = [to_struct(SubscriptionOut, r) for r in rows]
    return make_page(items, limit, lambda s: (_naive(s.created_at), s.subscription_id))


async def get_subscription(
    conn: asyncpg.Connection, owner: uuid.UUID | None, subscription_id: uuid.UUID
) -> SubscriptionOut:
    """A subscription of ``owner`` (any when None)."""
    row = await repo.get_subscription(conn, subscription_id, owner)
    if row is None:
        raise SubscriptionNotFoundError("No such subscription.")
    return to_struct(SubscriptionOut, row)


async def create_subscription(conn: asyncpg.Connection, data: SubscriptionCreate) -> SubscriptionOut:
    """Create a subscription for a user (admin)."""
    # FOR KEY SHARE keeps the user from being erased between this check and the insert.
    if await conn.fetchval("SELECT 1 FROM users WHERE user_id = $1 FOR KEY SHARE", data.user_id) is None:
        raise UserNotFoundError(
            "No such user.", details=[{"field": "user_id", "message": "No user has this id."}]
        )
    row = await repo.insert_subscription(conn, uuid7(), changes(data))
    return to_struct(SubscriptionOut, row)


async def update_subscription(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, data: SubscriptionUpdate
) -> SubscriptionOut:
    """Change a subscription (admin); the period stays ordered."""
    current = await repo.get_subscription(conn, subscription_id, None, for_update=True)
    if current is None:
        raise SubscriptionNotFoundError("No such subscription.")
    values = changes(data)
    if not values:
        return to_struct(SubscriptionOut, current)
    start = values.get("start_date", current["start_date"])
    end = values.get("end_date", current["end_date"])
    if end is not None and end < start:
        raise ValidationError(
            "The subscription would end before it starts.",
            details=[{"field": "end_date", "message": "Must not be before start_date."}],
        )
    row = await repo.update_subscription(conn, subscription_id, values)
    return to_struct(SubscriptionOut, row)
