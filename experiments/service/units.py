"""Which unit a request names, and assignment and conversion for every unit (docs/experiment-units.md).

A body names exactly one of ``user_id`` (a registered account), ``anonymous_id`` or ``external_user_id``
(Segment ids), and it must be the experiment's unit, with one exception: an ``anonymous`` experiment
also takes the ``user_id`` or ``external_user_id`` that identify/alias linked to one of its anonymous
assignments, and answers with that assignment (the visitor keeps their variant after signing in).
"""

from __future__ import annotations

import uuid

import asyncpg

from experiments import unit_repository as unit_repo
from experiments.assigner import AssignmentBatcher
from experiments.definitions import Experiment, ExperimentCache
from experiments.errors import ExperimentNotRunning, NotAssigned, UnitNotLinked
from experiments.schemas import AssignmentOut, ConversionOut, UserRef
from experiments.service.assignment import Assignment, assign
from experiments.service.common import ATTEMPTS, Caller, definition, may_act_for, utc
from experiments.service.conversions import record_conversion
from kernel.auth import AuthUser, utcnow
from kernel.errors import PermissionDeniedError, ValidationError, problem

__all__ = ["assign_for", "convert_for", "requested_unit"]

_FIELDS = {"user_id": "user", "anonymous_id": "anonymous", "external_user_id": "external"}


_FIELD_OF = {unit: field for field, unit in _FIELDS.items()}


def requested_unit(ref: UserRef) -> tuple[str, str]:
    """(unit, id) of the one id the body names; 422 for none, several, or an id PostgreSQL cannot hold."""
    given = [
        (f, v)
        for f, v in (
            ("user_id", ref.user_id),
            ("anonymous_id", ref.anonymous_id),
            ("external_user_id", ref.external_user_id),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ValidationError(
            "The body must name exactly one of user_id, anonymous_id and external_user_id.",
            details=[problem(f"body.{f}", "exactly one of these is required") for f in _FIELDS],
        )
    field, value = given[0]
    if "\x00" in value:
        raise ValidationError(
            f"{field} must not contain NUL.", details=[problem(f"body.{field}", "contains NUL")]
        )
    return _FIELDS[field], value


def _mismatch(exp: Experiment, unit: str) -> ValidationError:
    field = _FIELD_OF[unit]
    expected = _FIELD_OF[exp.unit]
    return ValidationError(
        f"Experiment {exp.name!r} assigns {exp.unit} units: send {expected}, not {field}.",
        details=[problem(f"body.{field}", f"the experiment's unit is {exp.unit}: send {expected}")],
    )


def _segment_caller(caller: Caller, unit: str) -> None:
    """Segment ids are not accounts: only an app (write key) or an admin may name them."""
    if isinstance(caller, AuthUser) and not caller.has_role("admin"):
        raise PermissionDeniedError(
            f"Only an app's write key or an admin may name an {_FIELD_OF[unit]}.", code="forbidden"
        )


async def _linked(pool: asyncpg.Pool, exp: Experiment, unit: str, raw: str, caller: Caller) -> asyncpg.Record:
    """The anonymous assignment of ``exp`` that the user or Segment userId was linked to (409 if none)."""
    if unit == "user":
        row = await unit_repo.linked_assignment(pool, exp.test_id, user_id=may_act_for(caller, raw))
    else:
        _segment_caller(caller, unit)
        row = await unit_repo.linked_assignment(pool, exp.test_id, external_user_id=raw)
    if row is None:
        raise UnitNotLinked(exp.name, _FIELD_OF[unit])
    return row


async def _resolve(
    pool: asyncpg.Pool, exp: Experiment, unit: str, raw: str, caller: Caller
) -> uuid.UUID | str | asyncpg.Record:
    """What the request stands for in ``exp``: a user's UUID, a unit id, or a linked anonymous assignment."""
    if unit == exp.unit:
        if unit == "user":
            return may_act_for(caller, raw)
        _segment_caller(caller, unit)
        return raw
    if exp.unit == "anonymous":
        return await _linked(pool, exp, unit, raw, caller)
    raise _mismatch(exp, unit)


async def assign_for(
    pool: asyncpg.Pool,
    cache: ExperimentCache,
    batchers: tuple[AssignmentBatcher, AssignmentBatcher],
    caller: Caller,
    name: str,
    ref: UserRef,
) -> AssignmentOut:
    """``POST /v1/experiments/{name}/assignments``: authorise, assign (sticky) or find the linked one, view.

    ``batchers`` group the statements of users and of other units. Both the Litestar route and the
    kernel's fast path call this, so they cannot drift apart.
    """
    unit, raw = requested_unit(ref)
    exp = await definition(pool, cache, name)
    target = await _resolve(pool, exp, unit, raw, caller)
    if isinstance(target, uuid.UUID):
        return (await assign(pool, cache, batchers[0], name, target)).out()
    if isinstance(target, str):
        return (await assign(pool, cache, batchers[1], name, target)).out()
    reason = exp.not_running_reason(utcnow().date())
    if reason is not None:
        raise ExperimentNotRunning(reason)
    return Assignment(exp, exp.variant_by_id(target["variant_id"]), target["assigned_at"], False).out()


async def _record_unit_conversion(pool: asyncpg.Pool, exp: Experiment, unit_id: str) -> ConversionOut:
    """``record_conversion`` for an anonymous or external unit."""
    for _ in range(ATTEMPTS):
        row = await unit_repo.convert_unit(pool, exp.test_id, unit_id)
        if not row["assigned"]:
            raise NotAssigned(exp.name, unit_id)
        variant = exp.variant_by_id(row["variant_id"])
        if row["new_at"] is not None:
            return ConversionOut(exp.name, variant.name, utc(row["new_at"]), True)
        if row["old_at"] is not None:
            return ConversionOut(exp.name, variant.name, utc(row["old_at"]), False)
    raise ExperimentNotRunning(f"Conversion of {unit_id!r} in {exp.name!r} kept racing; retry.")


async def convert_for(
    pool: asyncpg.Pool, cache: ExperimentCache, caller: Caller, name: str, ref: UserRef
) -> ConversionOut:
    """``POST /v1/experiments/{name}/conversions``: authorise, convert the unit (first conversion wins)."""
    unit, raw = requested_unit(ref)
    exp = await definition(pool, cache, name)
    target = await _resolve(pool, exp, unit, raw, caller)
    if isinstance(target, uuid.UUID):
        return await record_conversion(pool, cache, name, target)
    if exp.status == "completed" or (exp.end_date is not None and utcnow().date() > exp.end_date):
        raise ExperimentNotRunning(f"Experiment {name!r} is over; conversions are no longer recorded.")
    unit_id = target if isinstance(target, str) else str(target["unit_id"])
    return await _record_unit_conversion(pool, exp, unit_id)
