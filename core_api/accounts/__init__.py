"""Accounts: registration, login, the caller's profile and erasure, roles, and the user's own resources
(preferences, devices, subscriptions).

The names below are the domain's public API for other domains (the web app's sign-in uses the same
throttled login as ``POST /v1/auth/login``, and the same refresh and logout).
"""

from __future__ import annotations

from core_api.accounts.service import (
    LoginAttempt,
    check_password,
    complete_login,
    find_login_user,
    logout,
    reserve_login_attempt,
)
from core_api.accounts.sessions import refresh

__all__ = [
    "LoginAttempt",
    "check_password",
    "complete_login",
    "find_login_user",
    "logout",
    "refresh",
    "reserve_login_attempt",
]
