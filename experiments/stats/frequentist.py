"""Welch t-tests on two groups, absolute or relative (delta method), fixed-horizon or sequential.

Formulas follow gbstats 0.8.0 (``gbstats.frequentist.tests``) so the numbers agree to float precision:
``TwoSidedTTest`` for fixed-horizon and ``SequentialTwoSidedTTest`` (Waudby-Smith et al. 2023,
asymptotic confidence sequences) for the always-valid p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import t as student_t

from experiments.stats.statistics import Statistic, adjust_pair

__all__ = ["TestResult", "sequential_test", "welch_test"]


@dataclass(frozen=True, slots=True)
class TestResult:
    """Point estimate of treatment minus control (absolute or relative), its interval and p-value."""

    estimate: float
    ci: tuple[float, float]
    p_value: float
    std_error: float


def _usable(a: Statistic, b: Statistic) -> bool:
    # gbstats returns an uninformative default for a zero baseline or a zero variance; n >= 2 keeps the
    # Welch-Satterthwaite degrees of freedom finite.
    return (
        a.n >= 2 and b.n >= 2 and a.mean != 0 and a.unadjusted_mean != 0 and a.variance > 0 and b.variance > 0
    )


def _estimate(a: Statistic, b: Statistic, relative: bool) -> tuple[float, float]:
    """Difference and its variance; the relative variance is the delta-method one.

    Relative lifts divide by the control's unadjusted mean, and their variance uses unadjusted means
    with the (CUPED-adjusted, if any) variances, as gbstats does.
    """
    if relative:
        mu_a, mu_b = a.unadjusted_mean, b.unadjusted_mean
        diff = (b.mean - a.mean) / mu_a
        var = b.variance / (mu_a**2 * b.n) + a.variance * mu_b**2 / (mu_a**4 * a.n)
    else:
        diff = b.mean - a.mean
        var = b.variance / b.n + a.variance / a.n
    return diff, var


def _welch_dof(a: Statistic, b: Statistic) -> float:
    num = (b.variance / b.n + a.variance / a.n) ** 2
    den = b.variance**2 / (b.n**2 * (b.n - 1)) + a.variance**2 / (a.n**2 * (a.n - 1))
    return num / den


def welch_test(
    control: Statistic, treatment: Statistic, *, alpha: float = 0.05, relative: bool = False
) -> TestResult | None:
    """Two-sided Welch t-test of ``treatment - control`` (or its ratio to control when ``relative``).

    None when the comparison is undefined (fewer than two users, a zero baseline, zero variance).
    CUPED statistics get their pooled theta here (``adjust_pair``).
    """
    control, treatment = adjust_pair(control, treatment)
    if not _usable(control, treatment):
        return None
    diff, var = _estimate(control, treatment, relative)
    se = math.sqrt(var)
    dof = _welch_dof(control, treatment)
    p = 2.0 * float(student_t.sf(abs(diff / se), dof))
    width = float(student_t.ppf(1.0 - alpha / 2.0, dof)) * se
    return TestResult(diff, (diff - width, diff + width), min(p, 1.0), se)


def sequential_test(
    control: Statistic,
    treatment: Statistic,
    *,
    alpha: float = 0.05,
    relative: bool = False,
    tuning: float = 5000.0,
) -> TestResult | None:
    """Always-valid p-value and confidence sequence (safe to look at after every new user).

    ``tuning`` is the sample size at which the sequence is tightest (gbstats'
    ``sequential_tuning_parameter``, default 5000).
    """
    control, treatment = adjust_pair(control, treatment)
    if not _usable(control, treatment):
        return None
    diff, var = _estimate(control, treatment, relative)
    big_n = control.n + treatment.n
    # eq. 161 of Waudby-Smith et al. (arXiv 2103.06476v7): rho tuned for the given alpha and sample size.
    rho2 = (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / tuning
    s2 = var * big_n
    # eq. 9: the confidence-sequence half-width.
    width = math.sqrt(s2) * math.sqrt(
        2.0 * (big_n * rho2 + 1.0) * math.log(math.sqrt(big_n * rho2 + 1.0) / alpha) / (big_n**2 * rho2)
    )
    # eq. 155: p = 1 / e-value, capped at 1.
    st2 = diff * diff * big_n / var
    tr2p1 = big_n * rho2 + 1.0
    log_evalue = rho2 * st2 / (2.0 * tr2p1) - 0.5 * math.log(tr2p1)
    # Computed in logs: exp() of a large e-value overflows long before 1/e-value loses meaning.
    p = 1.0 if log_evalue <= 0 else math.exp(-log_evalue)
    return TestResult(diff, (diff - width, diff + width), p, math.sqrt(var))
