"""Accounts tables: users, devices, subscriptions, preferences, login throttle, token generations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Time, func, text
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from kernel import columns as col
from kernel.db import Base

__all__ = [
    "LoginThrottle",
    "RefreshToken",
    "Subscription",
    "User",
    "UserDevice",
    "UserPreference",
    "UserTokenVersion",
]


class User(col.Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        *col.indexes("users", "subscription_tier", "status"),
        # Emails are unique case-insensitively; the seed's plain unique index stays too.
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
    )

    user_id: Mapped[uuid.UUID] = col.pk_column()
    email: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    phone_number: Mapped[str | None] = mapped_column(String(20))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    time_of_birth: Mapped[dt.time | None] = mapped_column(Time)
    place_of_birth: Mapped[str | None] = mapped_column(String(255))
    subscription_tier: Mapped[str] = mapped_column(String(20), nullable=False, server_default="free")
    role: Mapped[str] = mapped_column(String(20), nullable=False, server_default="user")
    status: Mapped[str] = col.status_column("active")
    last_login_at: Mapped[dt.datetime | None] = col.time_column()


class UserDevice(col.Timestamps, Base):
    __tablename__ = "user_devices"
    __table_args__ = (
        *col.indexes("user_devices", "device_token", "platform"),
        # Addition (core API): a push token is registered once per user, so a refresh is an upsert.
        Index("uq_user_devices_user_id_device_token", "user_id", "device_token", unique=True),
    )

    device_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    device_token: Mapped[str] = mapped_column(String(255), nullable=False)
    platform: Mapped[str] = mapped_column(String(20), nullable=False)
    device_model: Mapped[str | None] = mapped_column(String(100))
    os_version: Mapped[str | None] = mapped_column(String(50))
    app_version: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    last_used_at: Mapped[dt.datetime | None] = col.time_column()


class Subscription(col.Timestamps, Base):
    __tablename__ = "subscriptions"
    __table_args__ = col.indexes("subscriptions", "plan_id", "status", "end_date")

    subscription_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = col.user_fk()
    plan_id: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = col.status_column()
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    auto_renew: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    payment_method: Mapped[str | None] = mapped_column(String(50))
    payment_provider: Mapped[str | None] = mapped_column(String(50))


class UserPreference(col.Timestamps, Base):
    __tablename__ = "user_preferences"
    __table_args__ = col.indexes("user_preferences", "language")

    preference_id: Mapped[uuid.UUID] = col.pk_column()
    # One preferences row per user: the FK index is unique (documented deviation).
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False, unique=True
    )
    notification_preferences: Mapped[dict[str, Any]] = col.json_column()
    theme_preferences: Mapped[dict[str, Any]] = col.json_column()
    language: Mapped[str] = mapped_column(String(10), nullable=False, server_default="en")
    timezone: Mapped[str] = mapped_column(String(50), nullable=False, server_default="UTC")


class LoginThrottle(Base):
    """Attempt counters with exponential backoff, shared by every app process.

    One row per key: the account (``acct:``), the account from one address (``acct-ip:``), one address
    (``ip:``), registrations per address (``reg-ip:``) and in all (``reg:``); keys hold hashes or
    addresses, never an email. ``window_start`` is the last counted attempt (a counter resets after a
    quiet window), ``blocked_until`` the end of the current backoff. Stale rows are deleted by a job.
    """

    __tablename__ = "login_throttle"
    __table_args__ = col.indexes("login_throttle", "window_start")

    throttle_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    blocked_until: Mapped[dt.datetime | None] = col.time_column()


class UserTokenVersion(Base):
    """A user's access-token generation: tokens carry it, and a bump (password change, status change,
    logout) ends every token issued before. No row means generation 0."""

    __tablename__ = "user_token_versions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = col.created_column()


class RefreshToken(Base):
    """One refresh token, stored as its SHA-256 (the token is 32 random bytes, shown once). Tokens of one
    login form a family: each refresh marks its token used and issues the next; presenting a used token
    again revokes the whole family (OAuth 2.0 refresh-token rotation with reuse detection)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_user_id", "user_id"),
        Index("ix_refresh_tokens_family_id", "family_id"),
    )

    token_id: Mapped[uuid.UUID] = col.pk_column()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False
    )
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    # The account's token generation when issued: a later password change, status change or logout ends it.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[dt.datetime] = col.created_column()
    expires_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
