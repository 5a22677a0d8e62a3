"""Results broken down by a dimension from the events' context: exploratory slices, not corrected.

A unit's value is the one on its earliest event (in the experiment's time range) that carries the context
field: ``platform`` (``context.device.type``), ``os`` (``context.os.name``), ``country``
(``context.location.country``), ``app_version`` (``context.app.version``) or ``trait:<name>``
(``context.traits.<name>``), as ingest stores Segment's context (one ``context.<field>`` property holding
the JSON object). The top N values by units get a slice each; the rest are summed into ``other`` (the sums
are additive) and units without a value are ``unknown``.

An experiment with no metrics but a ``goal_event`` is broken down by that conversion, as the binomial
metric it is (the goal event at or after exposure, no CUPED: what the main results show for it).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg

from experiments import metric_sql
from experiments.metric_definitions import with_goal
from experiments.metric_schemas import DimensionResultsOut, DimensionSlice
from experiments.service.management import get_experiment
from experiments.service.metric_results import Plan, flag_uncorrected
from experiments.service.metrics import analysis_of
from kernel.errors import ValidationError

__all__ = ["DIMENSIONS", "MAX_TOP", "dimension_results"]

DIMENSIONS = {
    "platform": ("context.device", "type"),
    "os": ("context.os", "name"),
    "country": ("context.location", "country"),
    "app_version": ("context.app", "version"),
}
MAX_TOP = 50
_TRAIT = re.compile(r"^trait:([A-Za-z0-9_.\-]{1,64})$")
_SUMMED = re.compile(r"^(n|[xys]\d+|yy\d+|xx\d+|yx\d+|r\d+)$")


def _source(dimension: str) -> tuple[str, str]:
    if dimension in DIMENSIONS:
        return DIMENSIONS[dimension]
    trait = _TRAIT.match(dimension)
    if trait:
        return ("context.traits", trait.group(1))
    raise ValidationError(
        f"Unknown dimension {dimension[:64]!r}.",
        details=[
            {
                "field": "path.dimension",
                "message": "must be one of the allowed values or trait:<name>",
                "allowed": [*DIMENSIONS, "trait:<name>"],
            }
        ],
    )


def _merge(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of several values summed per variant (caps are the same in every row)."""
    merged: dict[Any, dict[str, Any]] = {}
    for r in rows:
        into = merged.setdefault(r["variant_id"], {k: (0 if _SUMMED.match(k) else v) for k, v in r.items()})
        for k, v in r.items():
            if _SUMMED.match(k) and v is not None:
                into[k] += v
    return list(merged.values())


def _slices(rows: Sequence[dict[str, Any]], top: int) -> list[tuple[str, list[dict[str, Any]]]]:
    by_value: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_value[r["dim"]].append(r)
    units = {v: sum(r["n"] for r in rs) for v, rs in by_value.items()}
    ranked = sorted((v for v in by_value if v != "unknown"), key=lambda v: (-units[v], v))
    out = [(v, by_value[v]) for v in ranked[:top]]
    rest = [r for v in ranked[top:] for r in by_value[v]]
    if rest:
        out.append(("other", _merge(rest)))
    if "unknown" in by_value:
        out.append(("unknown", by_value["unknown"]))
    return out


async def dimension_results(
    conn: asyncpg.Connection, name: str, dimension: str, *, top: int = 10, alpha: float = 0.05
) -> DimensionResultsOut:
    """Every metric of the experiment per value of ``dimension`` (top ``top`` values, then other)."""
    if not 1 <= top <= MAX_TOP or not 1e-10 <= alpha < 1:
        raise ValidationError(
            f"Require 1 <= top <= {MAX_TOP} and 1e-10 <= alpha < 1.",
            details=[
                {
                    "field": "query.top" if not 1 <= top <= MAX_TOP else "query.alpha",
                    "message": "out of range",
                }
            ],
        )
    source = _source(dimension)
    exp = await get_experiment(conn, name)
    plan = Plan.of(with_goal(await analysis_of(conn, exp.test_id), exp.goal_event))
    note = None
    rows: list[dict[str, Any]] = []
    if plan.linked:
        rows = await plan.fetch(conn, exp, metric_sql.unit_source(exp.unit), dimension=source)
    else:
        note = (
            "The experiment has no metrics (primary_metric, secondary_metrics, guardrail_metrics) "
            "nor goal_event to break down."
        )
    slices = []
    for value, slice_rows in _slices(rows, top):
        metrics = plan.results(exp, slice_rows, alpha)
        flag_uncorrected(metrics, alpha)
        slices.append(DimensionSlice(value, sum(r["n"] for r in slice_rows), metrics))
    return DimensionResultsOut(exp.name, dimension, True, top, slices, note)
