"""What the service modules share: time and id parsing, who may act for whom, definition lookup."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from experiments import repository as repo
from experiments.definitions import Experiment, ExperimentCache
from experiments.errors import ExperimentNotFound, UserNotFound
from kernel.auth import AuthUser, Source
from kernel.errors import ValidationError, problem

__all__ = ["ATTEMPTS", "Caller", "definition", "may_act_for", "parse_user_id", "utc"]

# A statement that lost a race for the same row is repeated once per attempt; three is plenty.
ATTEMPTS = 3

Caller = AuthUser | Source
"""Who calls the per-user endpoints: an app (write key) or a signed-in user (Bearer token)."""


def utc(value: dt.datetime) -> dt.datetime:
    """Stored times are naive UTC; the API says so explicitly."""
    return value.replace(tzinfo=dt.UTC)


def parse_user_id(raw: str, field: str = "body.user_id") -> uuid.UUID:
    """A user id from a path or body: a UUID in any of its usual spellings, else 422."""
    try:
        return uuid.UUID(raw.strip())
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValidationError(
            f"user_id must be a UUID, got {raw[:64]!r}.", details=[problem(field, "must be a UUID")]
        ) from exc


def may_act_for(caller: Caller, raw_user_id: str, field: str = "body.user_id") -> uuid.UUID:
    """The user id the caller names, if it may act for that user.

    Apps and admins act for any user; a user only for itself: another id answers as if it did not
    exist (404), so the endpoint cannot be used to probe which ids are users.
    """
    user_id = parse_user_id(raw_user_id, field)
    if isinstance(caller, AuthUser) and not caller.has_role("admin") and caller.user_id != user_id:
        raise UserNotFound(user_id)
    return user_id


async def definition(pool: asyncpg.Pool, cache: ExperimentCache, name: str) -> Experiment:
    """The (cached) definition of experiment ``name``, or ``ExperimentNotFound``."""
    exp = await cache.get(name, lambda n: repo.fetch_experiment(pool, n))
    if exp is None:
        raise ExperimentNotFound(name)
    return exp
