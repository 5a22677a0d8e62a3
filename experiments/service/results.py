"""Significance, SRM and power of an experiment, from per-variant sufficient statistics counted in SQL."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from experiments import repository as repo
from experiments import stats
from experiments.definitions import Experiment, Variant
from experiments.schemas import Comparison, PowerOut, ResultsOut, SrmOut, VariantResult
from experiments.service.comparison import run_tests
from experiments.service.management import get_experiment
from experiments.service.metric_results import conversion_metric, metric_results
from experiments.service.metrics import analysis_of
from kernel import events
from kernel.errors import ValidationError, problem

__all__ = ["MDE_RANGE", "MIN_ALPHA", "results"]

# The minimum detectable effect a results request may ask about, as a relative lift (0.01 % to 1,000 %):
# outside it the sample-size search leaves floating point (a zero or infinite effect size).
MDE_RANGE = (0.0001, 10.0)
# Below this, alpha / 2 underflows and the normal quantile is infinite.
MIN_ALPHA = 1e-10

PerVariant = dict[uuid.UUID, stats.ProportionStats]


def _check_parameters(alpha: float, mde: float, power: float) -> None:
    if not MIN_ALPHA <= alpha < power < 1 or not MDE_RANGE[0] <= mde <= MDE_RANGE[1]:
        raise ValidationError(
            f"Require {MIN_ALPHA} <= alpha < power < 1 and {MDE_RANGE[0]} <= mde <= {MDE_RANGE[1]} "
            "(a relative lift).",
            details=[
                problem(f"query.{name}", f"{value} is out of range")
                for name, value, ok in (
                    ("alpha", alpha, MIN_ALPHA <= alpha < power),
                    ("power", power, alpha < power < 1),
                    ("mde", mde, MDE_RANGE[0] <= mde <= MDE_RANGE[1]),
                )
                if not ok
            ],
        )


def _counts(exp: Experiment, counts: Sequence[asyncpg.Record]) -> tuple[PerVariant, dict[int, int]]:
    """Users and conversions per variant (all phases), and users per phase."""
    per_variant: PerVariant = {v.variant_id: stats.ProportionStats.of(0, 0) for v in exp.variants}
    phase_users: dict[int, int] = defaultdict(int)
    for r in counts:
        per_variant[r["variant_id"]] += stats.ProportionStats.of(r["users"], r["conversions"])
        phase_users[r["phase"]] += r["users"]
    return per_variant, phase_users


def _expected_shares(
    exp: Experiment, phase_users: dict[int, int], weights: Sequence[asyncpg.Record]
) -> dict[uuid.UUID, float]:
    """Each variant's expected share of users: each phase's users split by that phase's weights."""
    total = sum(phase_users.values())
    if not total:
        return {v.variant_id: float(v.traffic_percentage) / 100.0 for v in exp.variants}
    phase_w: dict[tuple[int, uuid.UUID], float] = {
        (r["phase"], r["variant_id"]): float(r["traffic_percentage"]) / 100.0 for r in weights
    }
    return {
        v.variant_id: sum(n * phase_w.get((ph, v.variant_id), 0.0) for ph, n in phase_users.items()) / total
        for v in exp.variants
    }


def _comparison(a: stats.ProportionStats, b: stats.ProportionStats, v: Variant, alpha: float) -> Comparison:
    """One treatment against the control (Holm adjustment comes after, across all comparisons)."""
    tests, enough = run_tests(a, b, alpha)
    return Comparison(
        variant=v.name,
        **tests._asdict(),
        adjusted_p_value=None,
        significant=False,
        note=None
        if enough
        else "Not enough data: each variant needs 2+ users, and the rates must be strictly between 0 and 1.",
    )


def _comparisons(exp: Experiment, per_variant: PerVariant, alpha: float) -> list[Comparison]:
    """Every treatment against the control, Holm-adjusted across those with a p-value."""
    a = per_variant[exp.control.variant_id]
    comparisons = [
        _comparison(a, per_variant[v.variant_id], v, alpha) for v in exp.variants if not v.is_control
    ]
    tested = [c for c in comparisons if c.p_value is not None]
    for c, adj in zip(tested, stats.holm([c.p_value for c in tested if c.p_value is not None]), strict=True):
        c.adjusted_p_value = adj
        c.significant = adj < alpha
    return comparisons


async def results(
    conn: asyncpg.Connection, name: str, *, alpha: float = 0.05, mde: float = 0.05, power: float = 0.8
) -> ResultsOut:
    """Significance results from per-variant sufficient statistics counted in SQL.

    - ``p_value``/``absolute_*``: Welch t-test on the difference in conversion rates (gbstats
      ``TwoSidedTTest``, absolute); ``relative_*``: the same on the relative lift (delta method).
    - ``adjusted_p_value``: Holm across the comparisons; ``significant`` means adjusted p < alpha.
    - ``chance_to_beat_control``: gbstats' Bayesian effect test with its default flat prior.
    - ``sequential_p_value``: Waudby-Smith et al. always-valid p-value (absolute difference).
    - ``srm``: observed users against the expected split, phase by phase (each phase's users against
      that phase's weights), so a traffic change is not reported as a mismatch.
    - ``power``: the relative lift detectable with ``power`` at the current users, and the total users
      needed to detect a relative lift of ``mde`` at the current split.
    """
    _check_parameters(alpha, mde, power)
    exp = await get_experiment(conn, name)
    per_variant, phase_users = _counts(exp, await repo.aggregate_assignments(conn, exp.test_id))
    expected = _expected_shares(exp, phase_users, await repo.phase_weights(conn, exp.test_id))
    variants_out = []
    for v in exp.variants:
        s = per_variant[v.variant_id]
        variants_out.append(
            VariantResult(
                name=v.name,
                users=s.n,
                conversions=int(s.sum),
                conversion_rate=s.mean if s.n else None,
                expected_share=expected[v.variant_id],
            )
        )
    srm_p = stats.srm_p_value(
        [per_variant[v.variant_id].n for v in exp.variants], [expected[v.variant_id] for v in exp.variants]
    )
    if srm_p < stats.SRM_THRESHOLD:  # announced once per experiment phase, however often computed
        srm = {"experiment_id": exp.test_id, "name": exp.name, "p_value": srm_p, "phase": exp.phase}
        await events.emit_once(conn, f"srm:{exp.test_id}:{exp.phase}", "experiment.srm_detected", srm)
    analysis = await analysis_of(conn, exp.test_id)
    conversion = conversion_metric(exp, per_variant, alpha)
    metrics = await metric_results(conn, exp, analysis, alpha=alpha, conversion=conversion)
    return ResultsOut(
        experiment=exp.name,
        status=exp.status,
        control=exp.control.name,
        alpha=alpha,
        phase=exp.phase,
        variants=variants_out,
        comparisons=_comparisons(exp, per_variant, alpha),
        srm=SrmOut(p_value=srm_p, detected=srm_p < stats.SRM_THRESHOLD),
        power=_power(exp, per_variant, alpha=alpha, mde=mde, power=power),
        metrics=metrics,
        correction=analysis.correction,
    )


def _power(
    exp: Experiment,
    per_variant: dict[uuid.UUID, stats.ProportionStats],
    *,
    alpha: float,
    mde: float,
    power: float,
) -> PowerOut:
    """Power of control vs the treatment with the fewest users (now) or the smallest weight (planning).

    Effect sizes are Cohen's d with the control's standard deviation sqrt(p(1 - p)), as in statsmodels'
    ``NormalIndPower`` with ``nobs1`` = control users and ``ratio`` = treatment / control.
    """
    control = exp.control
    treatments = [v for v in exp.variants if not v.is_control]
    a = per_variant[control.variant_id]
    p = a.mean
    sigma = math.sqrt(p * (1 - p))
    if a.n < 2 or sigma == 0:
        return PowerOut(
            None, None, None, mde, power, note="The control needs users and a rate strictly between 0 and 1."
        )
    note = None
    smallest = min(treatments, key=lambda v: per_variant[v.variant_id].n)
    n_t = per_variant[smallest.variant_id].n
    mde_now = mde_abs = None
    if n_t >= 2:
        try:
            d_now = stats.minimum_detectable_effect(a.n, alpha, power, ratio=n_t / a.n)
        except (ValueError, ArithmeticError):
            note = "No finite effect size reaches this power at the current users."
        else:
            mde_abs = d_now * sigma
            mde_now = mde_abs / p
    else:
        note = f"Variant {smallest.name!r} has too few users for a detectable effect."
    needed = None
    w_c = float(control.traffic_percentage)
    w_t = min(float(v.traffic_percentage) for v in treatments)
    if w_c > 0 and w_t > 0:
        try:
            nobs1 = stats.required_nobs1(mde * p / sigma, alpha, power, ratio=w_t / w_c)
            # Control users needed, scaled up to the whole experiment by the control's share of traffic.
            needed = math.ceil(nobs1 * 100.0 / w_c)
        except (ValueError, ArithmeticError):
            # A rate very near 0 or 1 can push the effect size past what the root finder brackets.
            note = "No finite sample size detects this lift at the control's current rate."
    else:
        note = "A variant has 0% of traffic, so no sample size reaches it."
    return PowerOut(mde_now, needed, mde_abs, mde, power, note=note)
