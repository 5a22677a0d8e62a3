"""Tables of the accounts domain (defined with the rest of the core schema in ``core_api.models``)."""

from __future__ import annotations

from core_api.models import AuditLog, LoginThrottle, Subscription, User, UserDevice, UserPreference

__all__ = ["AuditLog", "LoginThrottle", "Subscription", "User", "UserDevice", "UserPreference"]
