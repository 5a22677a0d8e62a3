"""Sticky assignment: a user's variant, chosen by GrowthBook's hashing and stored on first use.

The hot path. Assignment takes the pool: its statement is atomic on its own, so it runs outside an
explicit transaction (no BEGIN/COMMIT), and concurrent requests share one such statement
(``experiments.assigner``). The routes authenticate the caller and hand over; everything from
authorisation to the response body happens here, on the way down to the repository and back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from experiments import repository as repo
from experiments.assigner import AssignmentBatcher
from experiments.definitions import Experiment, ExperimentCache, Variant
from experiments.errors import ExperimentNotFound, ExperimentNotRunning, UserNotFound
from experiments.schemas import AssignmentOut, UserAssignmentsOut
from experiments.service.common import ATTEMPTS, Caller, definition, may_act_for, utc
from kernel.auth import utcnow
from kernel.db import uuid7

__all__ = ["Assignment", "assign", "assign_running", "assignments_for"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's variant in one experiment."""

    experiment: Experiment
    variant: Variant
    assigned_at: dt.datetime
    new: bool

    def out(self) -> AssignmentOut:
        """The API view."""
        return AssignmentOut(self.experiment.name, self.variant.name, utc(self.assigned_at), self.new)


def _stored(exp: Experiment, row: asyncpg.Record) -> Assignment | None:
    """The assignment a statement's row reports (inserted now or found), None after a lost race."""
    if row["new_variant"] is not None:
        return Assignment(exp, exp.variant_by_id(row["new_variant"]), row["new_at"], True)
    if row["old_variant"] is not None:
        return Assignment(exp, exp.variant_by_id(row["old_variant"]), row["old_at"], False)
    return None


async def assign(
    pool: asyncpg.Pool,
    cache: ExperimentCache,
    batcher: AssignmentBatcher,
    name: str,
    user_id: uuid.UUID | str,
) -> Assignment:
    """The unit's variant: the stored one, else GrowthBook's choice under the current split (stored).

    ``user_id`` is a registered user's UUID (``batcher`` writes ab_test_assignments) or, for an
    anonymous or external experiment, the Segment id (a ``for_units`` batcher); either way the hash
    input is the id as a string.

    Normally one statement, shared with concurrent requests (``batcher``). A definition found stale by
    the statement (another process paused it or changed its traffic) is reloaded and the statement
    repeated; so is a lost insert race.
    """
    exp = await definition(pool, cache, name)
    for _ in range(ATTEMPTS):
        reason = exp.not_running_reason(utcnow().date())
        if reason is not None:
            raise ExperimentNotRunning(reason)
        chosen = exp.choose(str(user_id))
        row = await batcher.submit(exp.test_id, user_id, chosen.variant_id, exp.phase, uuid7())
        if not row["user_ok"]:
            raise UserNotFound(user_id)
        if not row["test_ok"]:
            cache.invalidate(name)
            fresh = await repo.fetch_experiment(pool, name)
            if fresh is None:
                raise ExperimentNotFound(name)
            if fresh == exp:
                # The definition is current, so the date check failed on the server's clock.
                raise ExperimentNotRunning(f"Experiment {name!r} is not running today.")
            exp = fresh
            continue
        found = _stored(exp, row)
        if found is not None:
            return found
    raise ExperimentNotRunning(f"Experiment {name!r} changed while assigning; retry.")


async def _reload_stale(
    pool: asyncpg.Pool, cache: ExperimentCache, pending: dict[uuid.UUID, Experiment], stale: list[uuid.UUID]
) -> None:
    """Put the fresh definitions of the ``stale`` experiments back in ``pending`` if still running."""
    cache.invalidate()
    fresh = {e.test_id: e for e in await repo.fetch_running(pool) if e.unit == "user"}
    pending.update({test_id: fresh[test_id] for test_id in stale if test_id in fresh})


async def _assign_pending(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    pending: dict[uuid.UUID, Experiment],
    out: dict[uuid.UUID, Assignment],
) -> list[uuid.UUID]:
    """One statement for every pending experiment: settled ones move to ``out``; returns the stale ids.

    Rows that lost an insert race stay pending and are repeated by the caller.
    """
    wanted = [(e.test_id, e.choose(str(user_id)).variant_id, e.phase, uuid7()) for e in pending.values()]
    rows = await repo.assign_many(pool, user_id, wanted)
    if rows and not rows[0]["user_ok"]:
        raise UserNotFound(user_id)
    stale: list[uuid.UUID] = []
    for row in rows:
        exp = pending[row["test_id"]]
        if not row["test_ok"]:
            stale.append(exp.test_id)
            continue
        found = _stored(exp, row)
        if found is not None:
            out[exp.test_id] = found
            del pending[exp.test_id]
    for test_id in stale:
        del pending[test_id]
    return stale


async def assign_running(pool: asyncpg.Pool, cache: ExperimentCache, user_id: uuid.UUID) -> list[Assignment]:
    """The user's variant in every running experiment, assigning where needed, in one statement.

    Experiments that stopped running since the cached list was loaded are left out: their definitions
    are reloaded once, and an experiment found stale again is dropped.
    """
    # Only experiments that assign users: anonymous and external ones are asked with their own ids.
    running = [e for e in await cache.running(lambda: repo.fetch_running(pool)) if e.unit == "user"]
    pending = {e.test_id: e for e in running if e.not_running_reason(utcnow().date()) is None}
    out: dict[uuid.UUID, Assignment] = {}
    reloaded = False
    for _ in range(ATTEMPTS):
        if not pending:
            break
        stale = await _assign_pending(pool, user_id, pending, out)
        if stale and not reloaded:
            reloaded = True
            await _reload_stale(pool, cache, pending, stale)
    if not running and not await repo.user_exists(pool, user_id):
        raise UserNotFound(user_id)
    return sorted(out.values(), key=lambda a: a.experiment.name)


async def assignments_for(
    pool: asyncpg.Pool, cache: ExperimentCache, caller: Caller, raw_user_id: str
) -> UserAssignmentsOut:
    """``GET /v1/users/{user_id}/assignments`` for an authenticated caller: authorise, assign, view."""
    user_id = may_act_for(caller, raw_user_id, "path.user_id")
    assignments = await assign_running(pool, cache, user_id)
    return UserAssignmentsOut(user_id, [a.out() for a in assignments])
