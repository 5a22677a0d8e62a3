"""Errors of the accounts domain."""

from __future__ import annotations

from kernel.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationError,
)

__all__ = [
    "AccountDisabledError",
    "DeviceNotFoundError",
    "DeviceTokenTakenError",
    "EmailTakenError",
    "InvalidCredentialsError",
    "InvalidRefreshTokenError",
    "LoginRateLimitedError",
    "RegistrationRateLimitedError",
    "SubscriptionNotFoundError",
    "UserNotFoundError",
    "WeakPasswordError",
]


class InvalidCredentialsError(AuthenticationError):
    """Unknown email or wrong password (never saying which)."""

    code = "invalid_credentials"


class InvalidRefreshTokenError(AuthenticationError):
    """The refresh token is unknown, expired, revoked or was already used (then its family is revoked)."""

    code = "invalid_refresh_token"


class AccountDisabledError(PermissionDeniedError):
    """The password was right but the account is suspended or deleted."""

    code = "account_disabled"


class LoginRateLimitedError(RateLimitedError):
    """Too many failed logins for this account or from this address."""

    code = "too_many_login_attempts"


class RegistrationRateLimitedError(RateLimitedError):
    """Too many registrations from this address, or in all."""

    code = "too_many_registrations"


class EmailTakenError(ConflictError):
    """An account with this email (compared case-insensitively) exists."""

    code = "email_taken"


class WeakPasswordError(ValidationError):
    """The password does not meet the policy."""


class UserNotFoundError(NotFoundError):
    """No such user (or not visible to the caller)."""

    code = "user_not_found"


class DeviceNotFoundError(NotFoundError):
    """No such device of the caller."""

    code = "device_not_found"


class DeviceTokenTakenError(ConflictError):
    """The caller already registered another device with this push token."""

    code = "device_token_taken"


class SubscriptionNotFoundError(NotFoundError):
    """No such subscription (or not visible to the caller)."""

    code = "subscription_not_found"
