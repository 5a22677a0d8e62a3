"""Request and response bodies of the accounts domain. Field names are the seed's column names.

Input Structs reject unknown fields (so ``{"role": "admin"}`` in a registration is an error, not
silently ignored) and enforce the columns' lengths; ``__post_init__`` checks what a type cannot say.
A ``ValueError`` raised there becomes a 400 with the message in ``details``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from core_api.accounts.emails import normalize_email
from kernel.resources import (
    NO_NUL,
    JsonObject,
    Name50,
    Name100,
    Str50,
    Str100,
    Str255,
    check_json_object,
    check_language,
    check_timezone,
)

__all__ = [
    "AdminUserUpdate",
    "DeviceOut",
    "DeviceRegister",
    "DeviceUpdate",
    "LoginRequest",
    "PreferencesOut",
    "PreferencesUpdate",
    "RegisterRequest",
    "SubscriptionCreate",
    "SubscriptionOut",
    "SubscriptionUpdate",
    "TokenResponse",
    "UserOut",
    "UserUpdate",
]

Role = Literal["user", "analyst", "admin"]
AccountStatus = Literal["active", "suspended", "deleted"]
Platform = Literal["ios", "android", "web"]
SubscriptionStatus = Literal["active", "trialing", "past_due", "paused", "cancelled", "expired"]
# Long enough for any passphrase, short enough that hashing it is cheap; the policy enforces the rest.
Password = Annotated[str, Meta(max_length=1024, pattern=NO_NUL)]
Phone = Annotated[str, Meta(min_length=3, max_length=20, pattern=r"^\+?[0-9][0-9 ().-]*$")]
Tier = Annotated[str, Meta(min_length=1, max_length=20, pattern=r"^[a-z0-9_-]+$")]
Token = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
Language = Annotated[str, Meta(max_length=10, pattern=NO_NUL)]
TimeZone = Annotated[str, Meta(max_length=50, pattern=NO_NUL)]

_EARLIEST_BIRTH = dt.date(1800, 1, 1)


def _check_birth(
    date_of_birth: dt.date | UnsetType | None, time_of_birth: dt.time | UnsetType | None
) -> None:
    if isinstance(date_of_birth, dt.date) and not (_EARLIEST_BIRTH <= date_of_birth <= dt.date.today()):
        raise ValueError("`date_of_birth` must be a past date after 1800-01-01")
    if isinstance(time_of_birth, dt.time) and time_of_birth.tzinfo is not None:
        raise ValueError("`time_of_birth` is a local time of day, without a UTC offset")


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/auth/register``."""

    email: Str255
    password: Password
    first_name: Name100
    last_name: Name100
    phone_number: Phone | None = None
    date_of_birth: dt.date | None = None
    time_of_birth: dt.time | None = None
    place_of_birth: Str255 | None = None

    def __post_init__(self) -> None:
        self.email = normalize_email(self.email)
        _check_birth(self.date_of_birth, self.time_of_birth)


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/auth/login``."""

    email: Str255
    password: Password


class TokenResponse(msgspec.Struct):
    """A bearer access token and its lifetime in seconds, with the refresh token that renews it."""

    access_token: str
    expires_in: int
    user_id: uuid.UUID
    role: str
    refresh_token: str
    refresh_expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/auth/refresh``."""

    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


class UserOut(msgspec.Struct):
    """A user's profile: every ``users`` column except ``password_hash``."""

    user_id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    phone_number: str | None
    date_of_birth: dt.date | None
    time_of_birth: dt.time | None
    place_of_birth: str | None
    subscription_tier: str
    role: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    last_login_at: dt.datetime | None


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/users/me``: omitted fields are unchanged; a password change needs the current one."""

    first_name: Name100 | UnsetType = UNSET
    last_name: Name100 | UnsetType = UNSET
    phone_number: Phone | UnsetType | None = UNSET
    date_of_birth: dt.date | UnsetType | None = UNSET
    time_of_birth: dt.time | UnsetType | None = UNSET
    place_of_birth: Str255 | UnsetType | None = UNSET
    password: Password | UnsetType = UNSET
    current_password: Password | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_birth(self.date_of_birth, self.time_of_birth)
        if (self.password is UNSET) != (self.current_password is UNSET):
            raise ValueError("`password` and `current_password` must be given together")


class AdminUserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/users/{user_id}`` (admin): role, account status and subscription tier."""

    role: Role | UnsetType = UNSET
    status: AccountStatus | UnsetType = UNSET
    subscription_tier: Tier | UnsetType = UNSET


class PreferencesOut(msgspec.Struct):
    """The caller's ``user_preferences`` row (ids and timestamps are null until first saved)."""

    preference_id: uuid.UUID | None
    user_id: uuid.UUID
    notification_preferences: JsonObject
    theme_preferences: JsonObject
    language: str
    timezone: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


class PreferencesUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PUT /v1/users/me/preferences``: the given fields are stored, omitted ones keep their value."""

    notification_preferences: JsonObject | UnsetType = UNSET
    theme_preferences: JsonObject | UnsetType = UNSET
    language: Language | UnsetType = UNSET
    timezone: TimeZone | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.notification_preferences, UnsetType):
            check_json_object(self.notification_preferences, "notification_preferences")
        if not isinstance(self.theme_preferences, UnsetType):
            check_json_object(self.theme_preferences, "theme_preferences")
        if isinstance(self.language, str):
            check_language(self.language)
        if isinstance(self.timezone, str):
            check_timezone(self.timezone)


class DeviceRegister(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/users/me/devices``: register a push token, or refresh it if already registered."""

    device_token: Token
    platform: Platform
    device_model: Str100 | None = None
    os_version: Str50 | None = None
    app_version: Str50 | None = None


class DeviceUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/users/me/devices/{device_id}``: a new token, versions, or ``active``."""

    device_token: Token | UnsetType = UNSET
    device_model: Str100 | UnsetType | None = UNSET
    os_version: Str50 | UnsetType | None = UNSET
    app_version: Str50 | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class DeviceOut(msgspec.Struct):
    """A ``user_devices`` row."""

    device_id: uuid.UUID
    user_id: uuid.UUID
    device_token: str
    platform: str
    device_model: str | None
    os_version: str | None
    app_version: str | None
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    last_used_at: dt.datetime | None


def _check_period(start: dt.date | UnsetType, end: dt.date | UnsetType | None) -> None:
    if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
        raise ValueError("`end_date` must not be before `start_date`")


class SubscriptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/subscriptions`` (admin)."""

    user_id: uuid.UUID
    plan_id: Name50
    status: SubscriptionStatus
    start_date: dt.date
    end_date: dt.date | None = None
    auto_renew: bool = True
    payment_method: Str50 | None = None
    payment_provider: Str50 | None = None

    def __post_init__(self) -> None:
        _check_period(self.start_date, self.end_date)


class SubscriptionUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``PATCH /v1/subscriptions/{subscription_id}`` (admin)."""

    plan_id: Name50 | UnsetType = UNSET
    status: SubscriptionStatus | UnsetType = UNSET
    start_date: dt.date | UnsetType = UNSET
    end_date: dt.date | UnsetType | None = UNSET
    auto_renew: bool | UnsetType = UNSET
    payment_method: Str50 | UnsetType | None = UNSET
    payment_provider: Str50 | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_period(self.start_date, self.end_date)


class SubscriptionOut(msgspec.Struct):
    """A ``subscriptions`` row."""

    subscription_id: uuid.UUID
    user_id: uuid.UUID
    plan_id: str
    status: str
    start_date: dt.date
    end_date: dt.date | None
    auto_renew: bool
    payment_method: str | None
    payment_provider: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
