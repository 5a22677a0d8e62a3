"""Logic for the resources a user owns: preferences, devices, subscriptions.

Split from ``service.py`` (accounts and authentication) to keep each module short. Devices and
subscriptions are ``kernel.owned`` resources (every lookup scoped to the owner, so another user's id is
simply not found); what is left here is their special cases: the push-token upsert and its uniqueness,
and subscriptions written by admins for any user.
"""

from __future__ import annotations

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
from kernel.auth import AuthUser, require_role
from kernel.db import uuid7
from kernel.errors import ValidationError
from kernel.owned import OwnedResource
from kernel.resources import changes, to_struct

__all__ = [
    "create_subscription",
    "deactivate_device",
    "devices",
    "get_preferences",
    "my_subscriptions",
    "put_preferences",
    "register_device",
    "subscriptions",
    "update_device",
    "update_subscription",
]

# Devices are private, even from admins; under /v1/users/me a subscription is the caller's own, while
# /v1/subscriptions lets admins read everyone's.
devices = OwnedResource(repo.devices, DeviceOut, DeviceNotFoundError, "No such device.", admin_reads=False)
my_subscriptions = OwnedResource(
    repo.subscriptions, SubscriptionOut, SubscriptionNotFoundError, "No such subscription.", admin_reads=False
)
subscriptions = OwnedResource(
    repo.subscriptions, SubscriptionOut, SubscriptionNotFoundError, "No such subscription."
)


# --- Preferences ---------------------------------------------------------------------------------


async def get_preferences(conn: asyncpg.Connection, user: AuthUser) -> PreferencesOut:
    """The caller's preferences; the seed's defaults when none were saved yet."""
    row = await repo.get_preferences(conn, user.user_id)
    if row is None:
        return PreferencesOut(
            preference_id=None,
            user_id=user.user_id,
            notification_preferences={},
            theme_preferences={},
            language="en",
            timezone="UTC",
            created_at=None,
            updated_at=None,
        )
    return to_struct(PreferencesOut, row)


async def put_preferences(
    conn: asyncpg.Connection, user: AuthUser, data: PreferencesUpdate
) -> PreferencesOut:
    """Store the given preference fields (the others keep their value)."""
    row = await repo.upsert_preferences(conn, uuid7(), user.user_id, changes(data))
    return to_struct(PreferencesOut, row)


# --- Devices -------------------------------------------------------------------------------------


async def register_device(
    conn: asyncpg.Connection, user: AuthUser, data: DeviceRegister
) -> tuple[DeviceOut, bool]:
    """Register a push token, or refresh it (reactivate, new versions); (device, created)."""
    row, created = await repo.upsert_device(conn, uuid7(), user.user_id, changes(data))
    return devices.to_out(row), created


async def update_device(
    conn: asyncpg.Connection, user: AuthUser, device_id: uuid.UUID, data: DeviceUpdate
) -> DeviceOut:
    """Change one of the caller's devices; a push token is registered once per user (409)."""
    try:
        row = await repo.update_device(conn, device_id, user.user_id, changes(data))
    except asyncpg.UniqueViolationError as exc:
        # The request's transaction is rolled back at its boundary; the client gets the 409.
        raise DeviceTokenTakenError("Another of your devices has this push token.") from exc
    return devices.found(row)


async def deactivate_device(conn: asyncpg.Connection, user: AuthUser, device_id: uuid.UUID) -> None:
    """Stop pushing to one of the caller's devices (the row is kept, ``active`` = false)."""
    await devices.update(conn, user, device_id, {"active": False})


# --- Subscriptions (written by admins) -----------------------------------------------------------


async def create_subscription(
    conn: asyncpg.Connection, user: AuthUser, data: SubscriptionCreate
) -> SubscriptionOut:
    """Create a subscription for a user (admin)."""
    require_role(user, "admin")
    # FOR KEY SHARE keeps the user from being erased between this check and the insert.
    if await conn.fetchval("SELECT 1 FROM users WHERE user_id = $1 FOR KEY SHARE", data.user_id) is None:
        raise UserNotFoundError(
            "No such user.", details=[{"field": "body.user_id", "message": "No user has this id."}]
        )
    return await subscriptions.create(conn, data.user_id, changes(data))


async def update_subscription(
    conn: asyncpg.Connection, user: AuthUser, subscription_id: uuid.UUID, data: SubscriptionUpdate
) -> SubscriptionOut:
    """Change a subscription (admin); the period stays ordered."""
    if not user.has_role("admin"):
        # Visibility before permission: a stranger's subscription is not found, one's own is forbidden.
        await my_subscriptions.get(conn, user, subscription_id)
        require_role(user, "admin")
    current = await repo.subscriptions.get(conn, subscription_id, None, lock="FOR UPDATE")
    if current is None:
        raise subscriptions.not_found()
    values = changes(data)
    if not values:
        return subscriptions.to_out(current)
    start = values.get("start_date", current["start_date"])
    end = values.get("end_date", current["end_date"])
    if end is not None and end < start:
        raise ValidationError(
            "The subscription would end before it starts.",
            details=[{"field": "body.end_date", "message": "Must not be before start_date."}],
        )
    return subscriptions.found(await repo.subscriptions.update(conn, subscription_id, None, values))
