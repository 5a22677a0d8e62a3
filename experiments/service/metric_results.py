"""Per-metric results: each of an experiment's metrics, every treatment against the control.

Sums per variant come from one SQL statement (``experiments.metric_sql``); the statistics are gbstats'
(``SampleMeanStatistic``, ``ProportionStatistic``, ``RatioStatistic``, ``RegressionAdjustedStatistic``),
tested against its golden values. Primary and secondary comparisons form one correction family (Holm or
Benjamini-Hochberg, per experiment); guardrails stay outside it and are flagged ``harm`` when they move
against their direction with p < alpha.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from experiments import metric_sql, stats
from experiments.definitions import Experiment
from experiments.metric_definitions import Analysis, LinkedMetric, MetricDef
from experiments.metric_schemas import MetricComparison, MetricResult, MetricVariant
from experiments.service.comparison import run_tests
from experiments.service.unit_state import read_state, until_of
from experiments.stats import Statistic

__all__ = ["Plan", "conversion_metric", "flag_uncorrected", "metric_results"]

PerVariant = dict[uuid.UUID, Statistic]
_ROLE_ORDER = {"primary": 0, "secondary": 1, "guardrail": 2}


def _mean_stats(n: int, total: float, squares: float, binary: bool) -> stats.SampleMeanStats:
    if binary:
        return stats.ProportionStats(n, total, total)
    return stats.SampleMeanStats(n, total, squares)


class _Sums:
    """A variant's row of the sums statement, read by part index."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.n: int = row["n"]

    def get(self, key: str) -> float:
        value = self.row.get(key)
        return float(value) if value is not None else 0.0

    def post(self, i: int, part: MetricDef) -> stats.SampleMeanStats:
        return _mean_stats(self.n, self.get(f"y{i}"), self.get(f"yy{i}"), part.binary)

    def cuped(self, i: int, part: MetricDef) -> stats.RegressionAdjustedStats:
        pre = _mean_stats(self.n, self.get(f"x{i}"), self.get(f"xx{i}"), part.binary)
        return stats.RegressionAdjustedStats(self.n, self.post(i, part), pre, self.get(f"yx{i}"))


def _statistics(
    metric: MetricDef, index: dict[uuid.UUID, int], ratio: int | None, sums: _Sums, cuped: bool
) -> Statistic:
    """The metric's statistic in one variant."""
    if metric.numerator is not None and metric.denominator is not None and ratio is not None:
        i, j = index[metric.numerator.metric_id], index[metric.denominator.metric_id]
        return stats.RatioStats(
            sums.n, sums.post(i, metric.numerator), sums.post(j, metric.denominator), sums.get(f"r{ratio}")
        )
    i = index[metric.metric_id]
    return sums.cuped(i, metric) if cuped else sums.post(i, metric)


def _comparison(
    a: Statistic, b: Statistic, name: str, alpha: float, cuped: bool, inverse: bool
) -> MetricComparison:
    tests, enough = run_tests(a, b, alpha, inverse=inverse)
    return MetricComparison(
        variant=name,
        **tests._asdict(),
        adjusted_p_value=None,
        significant=False,
        cuped=cuped,
        note=None
        if enough
        else "Not enough data: each variant needs 2+ units, a non-zero control mean and some variance.",
    )


def _result(
    exp: Experiment, metric: MetricDef, role: str, per_variant: PerVariant, alpha: float, cuped: bool
) -> MetricResult:
    control = per_variant[exp.control.variant_id]
    variants = []
    for v in exp.variants:
        s = per_variant[v.variant_id]
        plain = s.post if isinstance(s, stats.RegressionAdjustedStats) else s
        total = plain.m.sum if isinstance(plain, stats.RatioStats) else getattr(plain, "sum", None)
        variants.append(MetricVariant(v.name, s.n, plain.unadjusted_mean if s.n else None, total))
    comparisons = [
        _comparison(control, per_variant[v.variant_id], v.name, alpha, cuped, metric.direction == "decrease")
        for v in exp.variants
        if not v.is_control
    ]
    return MetricResult(
        metric=metric.name, role=role, kind=metric.kind, direction=metric.direction,  # type: ignore[arg-type]
        variants=variants, comparisons=comparisons,
    )  # fmt: skip


def _correct(results: Sequence[MetricResult], method: stats.Correction, alpha: float) -> None:
    """Adjust the primary and secondary p-values as one family; flag guardrail harm (uncorrected)."""
    family = [c for r in results if r.role != "guardrail" for c in r.comparisons if c.p_value is not None]
    for c, adj in zip(
        family, stats.adjust([c.p_value for c in family if c.p_value is not None], method), strict=True
    ):
        c.adjusted_p_value = adj
        c.significant = adj < alpha
    flag_uncorrected([r for r in results if r.role == "guardrail"], alpha)


def flag_uncorrected(results: Sequence[MetricResult], alpha: float) -> None:
    """Exploratory results (dimension slices): no correction; significant is p < alpha, harm as usual."""
    for r in results:
        for c in r.comparisons:
            c.significant = c.p_value is not None and c.p_value < alpha
            if r.role == "guardrail":
                bad = c.absolute_lift is not None and (c.absolute_lift < 0) == (r.direction == "increase")
                c.harm = c.significant and bad


def conversion_metric(
    exp: Experiment, per_variant: dict[uuid.UUID, stats.ProportionStats], alpha: float
) -> MetricResult:
    """The goal-event conversion (``converted`` per assignment) as a binomial primary metric."""
    metric = MetricDef(
        uuid.UUID(int=0), exp.goal_event or "conversion", "binomial", "increase", event=exp.goal_event
    )
    return _result(exp, metric, "primary", dict(per_variant), alpha, cuped=False)


async def metric_results(
    conn: asyncpg.Connection,
    exp: Experiment,
    analysis: Analysis,
    *,
    alpha: float,
    conversion: MetricResult | None,
    units: metric_sql.UnitSource | None = None,
) -> list[MetricResult]:
    """Every linked metric's result (the goal-event conversion first when no primary metric is set)."""
    plan = Plan.of(analysis)
    results: list[MetricResult] = []
    if conversion is not None and not any(m.role == "primary" for m in plan.linked):
        results.append(conversion)
    if plan.linked:
        rows = await plan.fetch(conn, exp, units or metric_sql.unit_source(exp.unit))
        results += plan.results(exp, rows, alpha)
    _correct(results, analysis.correction, alpha)  # type: ignore[arg-type]
    return results


@dataclass(frozen=True)
class Plan:
    """What the sums statement computes for an experiment's metrics: the event metrics ("parts") by
    index, the ratios' part pairs, the CUPED lookback (None: off) and the lookback the per-unit state
    keeps (``history``: CUPED's, on or off)."""

    linked: tuple[LinkedMetric, ...]
    parts: tuple[MetricDef, ...]
    index: dict[uuid.UUID, int]
    ratio_metrics: tuple[MetricDef, ...]
    lookback: int | None
    history: int

    @classmethod
    def of(cls, analysis: Analysis) -> Plan:
        linked = tuple(sorted(analysis.metrics, key=lambda m: (_ROLE_ORDER[m.role], m.position)))
        parts: dict[uuid.UUID, MetricDef] = {}
        for lm in linked:
            for p in lm.metric.parts:
                parts.setdefault(p.metric_id, p)
        ratios = tuple(lm.metric for lm in linked if lm.metric.kind == "ratio")
        lookback = analysis.cuped_lookback_days if analysis.cuped_enabled else None
        index = {m: i for i, m in enumerate(parts)}
        return cls(linked, tuple(parts.values()), index, ratios, lookback, analysis.cuped_lookback_days)

    async def fetch(
        self,
        conn: asyncpg.Connection,
        exp: Experiment,
        units: metric_sql.UnitSource,
        dimension: tuple[str, str] | None = None,
        until: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The sums statement's rows (none when the experiment has no units yet); ``until``: as of then.

        Without a dimension or ``until``, from the per-unit state when it is current for this analysis
        (``service.unit_state``: the same rows, exact); otherwise, or failing that, the live statement.
        """
        ratios = [
            (self.index[m.parts[0].metric_id], self.index[m.parts[1].metric_id]) for m in self.ratio_metrics
        ]
        if dimension is None and until is None and units == metric_sql.unit_source(exp.unit):
            rows = await read_state(
                conn, exp, self.parts, ratios, cuped=self.lookback is not None, history=self.history
            )
            if rows is not None:
                return rows
        earliest = await metric_sql.fetch_earliest(conn, units, exp.test_id)
        if earliest is None:
            return []
        rows = await metric_sql.fetch_sums(
            conn, units, exp.test_id, self.parts, ratios,
            since=earliest - dt.timedelta(days=self.lookback or 0), until=until or until_of(exp),
            lookback_days=self.lookback, dimension=dimension,
        )  # fmt: skip
        return [dict(r) for r in rows]

    def stddevs(self, exp: Experiment, rows: Sequence[dict[str, Any]]) -> list[dict[str, float | None]]:
        """Per linked metric, each variant's per-unit standard deviation (unadjusted; a ratio's by the
        delta method), by variant name."""
        by_variant = {r["variant_id"]: _Sums(r) for r in rows}
        empty = _Sums({"n": 0})
        out = []
        for lm in self.linked:
            m = lm.metric
            ratio = self.ratio_metrics.index(m) if m in self.ratio_metrics else None
            sds: dict[str, float | None] = {}
            for v in exp.variants:
                stat = _statistics(m, self.index, ratio, by_variant.get(v.variant_id, empty), False)
                sds[v.name] = math.sqrt(stat.variance) if stat.n >= 2 and stat.variance >= 0 else None
            out.append(sds)
        return out

    def results(self, exp: Experiment, rows: Sequence[dict[str, Any]], alpha: float) -> list[MetricResult]:
        """Every linked metric's result from the rows of one slice (one row per variant)."""
        by_variant = {r["variant_id"]: _Sums(r) for r in rows}
        empty = _Sums({"n": 0})
        out = []
        for lm in self.linked:
            m = lm.metric
            cuped = self.lookback is not None and m.kind != "ratio"
            ratio = self.ratio_metrics.index(m) if m in self.ratio_metrics else None
            per_variant = {
                v.variant_id: _statistics(m, self.index, ratio, by_variant.get(v.variant_id, empty), cuped)
                for v in exp.variants
            }
            result = _result(exp, m, lm.role, per_variant, alpha, cuped)
            _annotate(result, m, self.index, rows)
            out.append(result)
        return out


def _annotate(
    result: MetricResult, m: MetricDef, index: dict[uuid.UUID, int], rows: Sequence[dict[str, Any]]
) -> None:
    """The cap used and the skipped property values (a ratio's: its numerator's and denominator's)."""
    caps = [rows[0][f"c{index[p.metric_id]}"] for p in m.parts if p.cap_percentile is not None and rows]
    result.cap_value = caps[0] if len(caps) == 1 and caps[0] is not None else None
    result.skipped_values = int(sum(r[f"s{index[p.metric_id]}"] or 0 for r in rows for p in m.parts))
