"""Bayesian chance to beat control, as gbstats 0.8.0 ``EffectBayesianABTest`` with its default config.

The default is a relative effect with an improper (flat) Gaussian prior, so the posterior of the lift is
the normal approximation ``N(relative lift, delta-method variance)``.
"""

from __future__ import annotations

import math

from scipy.stats import norm

from experiments.stats.statistics import Statistic, adjust_pair

__all__ = ["chance_to_beat_control"]


def chance_to_beat_control(control: Statistic, treatment: Statistic) -> float | None:
    """P(treatment's mean > control's) under the flat-prior posterior; None when undefined.

    gbstats answers 0.5 for an empty group or a zero baseline; None says "no information" explicitly.
    CUPED pairs are adjusted with their pooled theta; the lift divides by the unadjusted control mean.
    """
    control, treatment = adjust_pair(control, treatment)
    mu_a, mu_b = control.unadjusted_mean, treatment.unadjusted_mean
    if control.n == 0 or treatment.n == 0 or control.mean == 0 or mu_a == 0:
        return None
    if control.variance <= 0 or treatment.variance <= 0:
        return None
    lift = (treatment.mean - control.mean) / mu_a
    var = treatment.variance / (mu_a**2 * treatment.n) + control.variance * mu_b**2 / (mu_a**4 * control.n)
    return float(norm.sf(0.0, loc=lift, scale=math.sqrt(var)))
