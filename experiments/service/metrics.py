"""Metric definitions (admin) and each experiment's metrics and analysis settings. Runs in the caller's
transaction; docs/experiments-metrics.md says what each kind measures."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from msgspec import UNSET

from experiments import metric_repository as mrepo
from experiments.errors import DuplicateMetric, InvalidMetric, MetricNotFound
from experiments.metric_definitions import Analysis, MetricDef
from experiments.metric_schemas import CupedIn, CupedOut, MetricCreate, MetricOut, MetricPatch
from experiments.schemas import ExperimentOut
from experiments.service.common import utc
from kernel import audit
from kernel.auth import AuthUser
from kernel.pagination import Page, decode_cursor, make_page

__all__ = [
    "ROLES",
    "analysis_of",
    "create_metric",
    "experiment_views",
    "get_metric",
    "metric_out",
    "metric_page",
    "save_experiment_analysis",
    "update_metric",
]

ROLES = ("primary", "secondary", "guardrail")
# Metrics per experiment: each one is a few aggregates in the results query.
MAX_METRICS = 20
_PROPERTY_KINDS = ("sum", "mean")
_CAPPED_KINDS = ("count", "sum", "mean")


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"field": f"body.{field}", "message": message}


def _first(names: list[str]) -> str | None:
    return names[0] if names else None


def metric_out(m: MetricDef) -> MetricOut:
    """The API view of a definition."""
    assert m.created_at is not None
    assert m.updated_at is not None
    return MetricOut(
        metric_id=m.metric_id,
        name=m.name,
        kind=m.kind,
        event=m.event,
        property=m.property_name,
        numerator=m.numerator.name if m.numerator else None,
        denominator=m.denominator.name if m.denominator else None,
        window_hours=m.window_hours,
        retention_days=list(m.retention_days) if m.retention_days else None,
        cap_percentile=m.cap_percentile,
        direction=m.direction,
        description=m.description,
        created_at=utc(m.created_at),
        updated_at=utc(m.updated_at),
    )


def _shape_problems(d: dict[str, Any]) -> list[dict[str, Any]]:
    """Which fields a kind needs and which it must not have."""
    kind = d["kind"]
    ratio = kind == "ratio"
    wants = {
        "event": not ratio,
        "numerator": ratio,
        "denominator": ratio,
        "property": kind in _PROPERTY_KINDS,
        "retention_days": kind == "retention",
    }
    out = []
    for field, needed in wants.items():
        if needed and d.get(field) is None:
            out.append(_problem(field, f"A {kind} metric needs {field}."))
        elif not needed and d.get(field) is not None:
            out.append(_problem(field, f"A {kind} metric has no {field}."))
    if d.get("window_hours") is not None and kind in ("ratio", "retention"):
        out.append(
            _problem(
                "window_hours", f"A {kind} metric has no window_hours (its parts' or retention_days apply)."
            )
        )
    if d.get("cap_percentile") is not None and kind not in _CAPPED_KINDS:
        out.append(_problem("cap_percentile", f"Only {', '.join(_CAPPED_KINDS)} metrics are capped."))
    days = d.get("retention_days")
    if days is not None and days[0] >= days[1]:
        out.append(_problem("retention_days", "retention_days is [from_day, to_day] with from_day < to_day."))
    return out


async def _columns(conn: asyncpg.Connection, name: str, d: dict[str, Any]) -> dict[str, Any]:
    """Validated table columns of definition ``d`` (the API's field names)."""
    problems = _shape_problems(d)
    parts: dict[str, MetricDef] = {}
    if d["kind"] == "ratio" and not problems:
        parts = await mrepo.fetch_metrics(conn, [d["numerator"], d["denominator"]])
        for field in ("numerator", "denominator"):
            part = parts.get(d[field])
            if part is None:
                problems.append(_problem(field, f"No metric is named {d[field]!r}."))
            elif part.kind == "ratio" or part.name == name:
                problems.append(_problem(field, "A ratio's parts are metrics over events, not ratios."))
    if problems:
        raise InvalidMetric("The metric is not valid; see details.", details=problems)
    days = d.get("retention_days")
    return {
        "kind": d["kind"],
        "event_name": d.get("event"),
        "property_name": d.get("property"),
        "numerator_id": parts[d["numerator"]].metric_id if parts else None,
        "denominator_id": parts[d["denominator"]].metric_id if parts else None,
        "window_hours": d.get("window_hours"),
        "retention_from_day": days[0] if days else None,
        "retention_to_day": days[1] if days else None,
        "cap_percentile": d.get("cap_percentile"),
        "direction": d["direction"],
        "description": d.get("description"),
    }


async def create_metric(conn: asyncpg.Connection, data: MetricCreate, actor: AuthUser) -> MetricDef:
    """Validate and insert a metric."""
    fields = await _columns(conn, data.name, msgspec.structs.asdict(data))
    metric_id = await mrepo.insert_metric(conn, data.name, fields)
    if metric_id is None:
        raise DuplicateMetric(data.name)
    await audit.record(
        conn,
        "metric_created",
        actor_user_id=actor.user_id,
        subject_id=str(metric_id),
        details={"name": data.name},
    )
    return await get_metric(conn, data.name)


async def get_metric(conn: asyncpg.Connection, name: str) -> MetricDef:
    """One metric, or ``MetricNotFound`` (404)."""
    m = await mrepo.fetch_metric(conn, name)
    if m is None:
        raise MetricNotFound(name)
    return m


async def metric_page(conn: asyncpg.Connection, cursor: str | None, limit: int) -> Page[MetricOut]:
    """A page of metrics in name order, after the cursor's name."""
    after = decode_cursor(cursor, tuple[str])
    rows = await mrepo.fetch_metrics_page(conn, after[0] if after else None, limit + 1)
    return make_page([metric_out(m) for m in rows], limit, lambda m: (m.name,))


def _as_input(m: MetricDef) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "direction": m.direction,
        "event": m.event,
        "property": m.property_name,
        "numerator": m.numerator.name if m.numerator else None,
        "denominator": m.denominator.name if m.denominator else None,
        "window_hours": m.window_hours,
        "retention_days": list(m.retention_days) if m.retention_days else None,
        "cap_percentile": m.cap_percentile,
        "description": m.description,
    }


async def update_metric(
    conn: asyncpg.Connection, name: str, patch: MetricPatch, actor: AuthUser
) -> MetricDef:
    """Change a metric (any field but its name); the result is validated as a whole.

    A metric that is a ratio's part cannot become a ratio itself.
    """
    current = await mrepo.fetch_metric(conn, name, for_update=True)
    if current is None:
        raise MetricNotFound(name)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET}
    merged = {**_as_input(current), **changes}
    if (
        merged["kind"] == "ratio"
        and current.kind != "ratio"
        and await mrepo.is_ratio_part(conn, current.metric_id)
    ):
        raise InvalidMetric(
            "The metric is not valid; see details.",
            details=[_problem("kind", f"{name!r} is a part of a ratio metric and cannot become a ratio.")],
        )
    await mrepo.update_metric(conn, current.metric_id, await _columns(conn, name, merged))
    if changes:
        await audit.record(
            conn,
            "metric_updated",
            actor_user_id=actor.user_id,
            subject_id=str(current.metric_id),
            details={
                "name": name,
                "changes": {k: str(v) if v is not None else None for k, v in changes.items()},
            },
        )
    return await get_metric(conn, name)


async def _links(
    conn: asyncpg.Connection, primary: str | None, secondary: Sequence[str], guardrail: Sequence[str]
) -> list[tuple[uuid.UUID, str, int]]:
    """(metric_id, role, position) of the named metrics; 422 naming each unknown or repeated one."""
    named = [("primary_metric", "primary", [primary] if primary else [], False)]
    named += [
        ("secondary_metrics", "secondary", list(secondary), True),
        ("guardrail_metrics", "guardrail", list(guardrail), True),
    ]
    found = await mrepo.fetch_metrics(conn, [n for _, _, names, _ in named for n in names])
    problems, links, seen = [], [], set()
    for field, role, names, is_list in named:
        for i, n in enumerate(names):
            where = f"{field}[{i}]" if is_list else field
            if n not in found:
                problems.append(_problem(where, f"No metric is named {n!r}."))
            elif n in seen:
                problems.append(_problem(where, f"{n!r} is listed more than once."))
            else:
                links.append((found[n].metric_id, role, i))
            seen.add(n)
    if len(seen) > MAX_METRICS:
        problems.append(_problem("secondary_metrics", f"An experiment has at most {MAX_METRICS} metrics."))
    if problems:
        raise InvalidMetric("The experiment's metrics are not valid; see details.", details=problems)
    return links


async def save_experiment_analysis(conn: asyncpg.Connection, test_id: uuid.UUID, data: Any) -> dict[str, Any]:
    """Store the metric fields of an ``ExperimentCreate`` or ``ExperimentPatch``; what changed (for audit).

    A patch replaces the roles it names (the others keep their metrics) and the settings it names.
    """
    given: dict[str, Any] = {
        k: getattr(data, k, UNSET)
        for k in ("primary_metric", "secondary_metrics", "guardrail_metrics", "cuped", "correction")
    }
    given = {k: v for k, v in given.items() if v is not UNSET}
    if not given:
        return {}
    current = (await mrepo.fetch_analyses(conn, [test_id])).get(test_id, Analysis())
    roles = {
        "primary_metric": given.get("primary_metric", _first(current.of_role("primary"))),
        "secondary_metrics": given.get("secondary_metrics", current.of_role("secondary")),
        "guardrail_metrics": given.get("guardrail_metrics", current.of_role("guardrail")),
    }
    links = None
    if any(k in given for k in roles):
        links = await _links(
            conn, roles["primary_metric"], roles["secondary_metrics"], roles["guardrail_metrics"]
        )
    cuped: CupedIn = given.get("cuped") or CupedIn(current.cuped_enabled, current.cuped_lookback_days)
    correction = given.get("correction", current.correction)
    await mrepo.save_analysis(conn, test_id, links, (cuped.enabled, cuped.lookback_days, correction))
    return {k: msgspec.to_builtins(v) for k, v in given.items()}


async def analysis_of(conn: asyncpg.Connection, test_id: uuid.UUID) -> Analysis:
    """An experiment's metrics and settings (the defaults if none were set)."""
    return (await mrepo.fetch_analyses(conn, [test_id])).get(test_id, Analysis())


async def experiment_views(conn: asyncpg.Connection, outs: Sequence[ExperimentOut]) -> list[ExperimentOut]:
    """``outs`` with their metric fields filled in (one query for all of them)."""
    analyses = await mrepo.fetch_analyses(conn, [o.test_id for o in outs])
    views = []
    for o in outs:
        a = analyses.get(o.test_id, Analysis())
        views.append(
            msgspec.structs.replace(
                o,
                primary_metric=_first(a.of_role("primary")),
                secondary_metrics=a.of_role("secondary"),
                guardrail_metrics=a.of_role("guardrail"),
                cuped=CupedOut(a.cuped_enabled, a.cuped_lookback_days),
                correction=a.correction,
            )
        )
    return views
