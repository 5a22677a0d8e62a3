"""Accounts: registration, login, the caller's profile and erasure, roles, and the user's own resources
(preferences, devices, subscriptions)."""
