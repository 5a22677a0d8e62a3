"""Experiment definitions: create, read and change them (admin). Runs in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any

import asyncpg
from msgspec import UNSET

from experiments import repository as repo
from experiments.definitions import Experiment, weight
from experiments.errors import (
    DuplicateExperiment,
    DuplicateVariant,
    ExperimentNotFound,
    ExperimentNotRunning,
    InvalidExperiment,
)
from experiments.schemas import ExperimentCreate, ExperimentOut, ExperimentPatch, VariantOut
from experiments.service.common import utc
from experiments.service.metrics import experiment_views, save_experiment_analysis
from kernel import audit, events
from kernel.auth import AuthUser, utcnow
from kernel.errors import problem
from kernel.pagination import Page, decode_cursor, make_page

__all__ = [
    "create_experiment",
    "experiment_out",
    "experiment_page",
    "get_experiment",
    "list_experiments",
    "update_experiment",
]

_HUNDRED = decimal.Decimal("100.00")
_CENT = decimal.Decimal("0.01")
_TRANSITIONS = {"active": {"paused", "completed"}, "paused": {"active", "completed"}, "completed": set()}


def experiment_out(exp: Experiment, today: dt.date | None = None) -> ExperimentOut:
    """The API view of a definition."""
    return ExperimentOut(
        test_id=exp.test_id,
        name=exp.name,
        description=exp.description,
        status=exp.status,
        start_date=exp.start_date,
        end_date=exp.end_date,
        control=exp.control.name,
        phase=exp.phase,
        goal_event=exp.goal_event,
        unit=exp.unit,
        running=exp.not_running_reason(today or utcnow().date()) is None,
        variants=[
            VariantOut(
                v.variant_id,
                v.name,
                v.description,
                float(v.traffic_percentage),
                weight(v.traffic_percentage),
                v.is_control,
            )
            for v in exp.variants
        ],
        created_at=utc(exp.created_at),
        updated_at=utc(exp.updated_at),
    )


_END_BEFORE_START = [problem("body.end_date", "must not be before start_date")]


def _check_percentages(named: Sequence[tuple[str, decimal.Decimal]]) -> None:
    """Each percentage in [0, 100] with at most 2 decimals; together exactly 100.00."""
    seen: set[str] = set()
    for i, (name, pct) in enumerate(named):
        if name in seen:
            raise DuplicateVariant(name)
        seen.add(name)
        if not pct.is_finite() or pct < 0 or pct > _HUNDRED or pct != pct.quantize(_CENT, decimal.ROUND_DOWN):
            raise InvalidExperiment(
                f"traffic_percentage of {name!r} must be between 0 and 100 with at most 2 decimals.",
                details=[problem(f"body.variants[{i}].traffic_percentage", "must be 0 to 100, 2 decimals")],
            )
    total = sum((p for _, p in named), decimal.Decimal(0))
    if total != _HUNDRED:
        raise InvalidExperiment(
            f"traffic_percentage must sum to exactly 100.00, not {total}.",
            details=[problem("body.variants", f"traffic_percentage sums to {total}, not 100.00")],
        )


async def create_experiment(conn: asyncpg.Connection, data: ExperimentCreate, actor: AuthUser) -> Experiment:
    """Validate and insert a new experiment (active from ``start_date``)."""
    _check_percentages([(v.name, v.traffic_percentage) for v in data.variants])
    if data.end_date is not None and data.end_date < data.start_date:
        raise InvalidExperiment("end_date must not be before start_date.", details=_END_BEFORE_START)
    control = data.control if data.control is not None else data.variants[0].name
    if control not in {v.name for v in data.variants}:
        raise InvalidExperiment(
            f"control {control!r} is not one of the variants.",
            details=[problem("body.control", "must name one of the variants")],
        )
    test_id = await repo.insert_experiment(
        conn,
        name=data.name,
        description=data.description,
        start_date=data.start_date,
        end_date=data.end_date,
        goal_event=data.goal_event,
        variants=[(v.name, v.description, v.traffic_percentage, v.name == control) for v in data.variants],
        unit=data.unit,
    )
    if test_id is None:
        raise DuplicateExperiment(data.name)
    await audit.record(
        conn,
        "experiment_created",
        actor_user_id=actor.user_id,
        subject_id=str(test_id),
        details={"name": data.name},
    )
    await save_experiment_analysis(conn, test_id, data)
    exp = await repo.fetch_experiment(conn, data.name)
    assert exp is not None
    created = {"experiment_id": exp.test_id, "name": exp.name, "status": exp.status}
    await events.emit(conn, "experiment.created", {**created, "start_date": exp.start_date})
    return exp


async def list_experiments(conn: asyncpg.Connection) -> list[Experiment]:
    """Every experiment."""
    return await repo.fetch_experiments(conn)


async def experiment_page(conn: asyncpg.Connection, cursor: str | None, limit: int) -> Page[ExperimentOut]:
    """A page of experiments in name order, after the cursor's name."""
    after = decode_cursor(cursor, tuple[str])
    rows = sorted(await repo.fetch_experiments(conn), key=lambda e: e.name)
    if after is not None:
        rows = [e for e in rows if e.name > after[0]]
    views = await experiment_views(conn, [experiment_out(e) for e in rows[: limit + 1]])
    return make_page(views, limit, lambda e: (e.name,))


async def get_experiment(conn: asyncpg.Connection, name: str) -> Experiment:
    """One experiment, or ``ExperimentNotFound``."""
    exp = await repo.fetch_experiment(conn, name)
    if exp is None:
        raise ExperimentNotFound(name)
    return exp


def _field_changes(exp: Experiment, patch: ExperimentPatch) -> dict[str, Any]:
    """The ab_tests columns the patch changes (status, end date, description, goal event), validated."""
    fields: dict[str, Any] = {}
    if patch.status is not UNSET and patch.status != exp.status:
        if patch.status not in _TRANSITIONS[exp.status]:
            raise ExperimentNotRunning(
                f"Experiment {exp.name!r} is {exp.status} and cannot become {patch.status}."
            )
        fields["status"] = patch.status
    if patch.end_date is not UNSET:
        if patch.end_date is not None and patch.end_date < exp.start_date:
            raise InvalidExperiment("end_date must not be before start_date.", details=_END_BEFORE_START)
        fields["end_date"] = patch.end_date
    if patch.description is not UNSET:
        fields["description"] = patch.description
    if patch.goal_event is not UNSET:
        fields["goal_event"] = patch.goal_event
    return fields


async def _change_traffic(
    conn: asyncpg.Connection, exp: Experiment, patch: ExperimentPatch
) -> dict[str, str] | None:
    """Start a new phase if the patch changes the split; the new percentages by name, else None."""
    if patch.variants is UNSET:
        return None
    new = {v.name: v.traffic_percentage for v in patch.variants}
    _check_percentages([(v.name, v.traffic_percentage) for v in patch.variants])
    if set(new) != {v.name for v in exp.variants}:
        raise InvalidExperiment(
            "variants must list exactly the experiment's variants: "
            + ", ".join(repr(v.name) for v in exp.variants)
            + ".",
            details=[problem("body.variants", "must list exactly the experiment's variants")],
        )
    if all(new[v.name] == v.traffic_percentage for v in exp.variants):
        return None
    await repo.update_traffic(
        conn, exp.test_id, exp.phase + 1, {v.variant_id: new[v.name] for v in exp.variants}
    )
    return {k: str(v) for k, v in new.items()}


async def update_experiment(
    conn: asyncpg.Connection, name: str, patch: ExperimentPatch, actor: AuthUser
) -> Experiment:
    """Change status, end date, description, goal event and/or traffic (a new phase).

    The test's row is locked for the transaction, so concurrent traffic changes get distinct phases.
    Sticky assignments are untouched: only users assigned from now on follow the new split.
    """
    exp = await repo.fetch_experiment(conn, name, for_update=True)
    if exp is None:
        raise ExperimentNotFound(name)
    fields = _field_changes(exp, patch)
    changes: dict[str, Any] = {k: (str(v) if isinstance(v, dt.date) else v) for k, v in fields.items()}
    traffic = await _change_traffic(conn, exp, patch)
    if traffic is not None:
        changes["traffic"] = traffic
    changes.update(await save_experiment_analysis(conn, exp.test_id, patch))
    await repo.update_experiment(conn, exp.test_id, fields)
    if changes:
        await audit.record(
            conn,
            "experiment_updated",
            actor_user_id=actor.user_id,
            subject_id=str(exp.test_id),
            details=changes,
        )
    updated = await repo.fetch_experiment(conn, name)
    assert updated is not None
    if updated.status != exp.status:
        change = {"experiment_id": exp.test_id, "name": exp.name, "previous_status": exp.status}
        await events.emit(conn, "experiment.status_changed", {**change, "status": updated.status})
    return updated
