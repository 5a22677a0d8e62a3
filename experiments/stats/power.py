"""Normal-approximation power for two independent groups, as statsmodels' ``NormalIndPower``.

``effect_size`` is Cohen's d: the difference in means divided by the common standard deviation. Sample
sizes follow statsmodels' convention: ``nobs1`` users in the first group and ``ratio * nobs1`` in the
second.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.stats import norm

__all__ = ["minimum_detectable_effect", "normal_power", "required_nobs1"]


def normal_power(effect_size: float, nobs1: float, alpha: float, ratio: float = 1.0) -> float:
    """Power of the two-sided z-test (both rejection tails counted, like statsmodels)."""
    nobs = 1.0 / (1.0 / nobs1 + 1.0 / (nobs1 * ratio))
    crit = float(norm.isf(alpha / 2.0))
    shift = effect_size * math.sqrt(nobs)
    return float(norm.sf(crit - shift)) + float(norm.cdf(-crit - shift))


def minimum_detectable_effect(nobs1: float, alpha: float, power: float, ratio: float = 1.0) -> float:
    """The smallest positive effect size detected with probability ``power`` at these sample sizes."""
    if nobs1 <= 0 or ratio <= 0:
        raise ValueError("sample sizes must be positive")
    # Power grows monotonically in the effect size from alpha (d = 0), so a bracket exists for
    # alpha < power < 1; the upper end doubles until it is past the target.
    hi = 1.0
    while normal_power(hi, nobs1, alpha, ratio) < power:
        hi *= 2.0
    root: float = brentq(
        lambda d: normal_power(d, nobs1, alpha, ratio) - power, 0.0, hi, xtol=1e-15, rtol=1e-15
    )
    return root


def required_nobs1(effect_size: float, alpha: float, power: float, ratio: float = 1.0) -> float:
    """Users needed in the first group (not rounded) to detect ``effect_size`` with ``power``."""
    if effect_size <= 0 or ratio <= 0:
        raise ValueError("effect size and ratio must be positive")
    lo, hi = 1e-9, 2.0
    while normal_power(effect_size, hi, alpha, ratio) < power:
        hi *= 2.0
    root: float = brentq(
        lambda n: normal_power(effect_size, n, alpha, ratio) - power, lo, hi, xtol=1e-12, rtol=1e-15
    )
    return root
