"""The events one domain announces and others may act on, each in the announcer's transaction.

A domain that keeps rows about a user implements ``on_user_erased`` in its ``hooks`` module; the app
factory collects them (``app.state.user_erased_hooks``) and accounts calls each before it deletes the
user, so every table is written only by the domain that owns it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

__all__ = ["UserErasedHook"]

# (the caller's connection, the user) -> counts of rows erased or unlinked, by what they were.
UserErasedHook = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[dict[str, int]]]
