"""Sample ratio mismatch: a chi-square goodness-of-fit test of observed users against expected shares."""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import chi2

__all__ = ["SRM_THRESHOLD", "srm_p_value"]

# The usual alarm level (GrowthBook's default): a real mismatch, not bad luck, at p < 0.001.
SRM_THRESHOLD = 0.001


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """gbstats 0.8.0 ``check_srm``: chi-square with ``len(users) - 1`` degrees of freedom.

    ``weights`` need not sum to 1. Variants with zero weight are left out of the statistic (as gbstats
    does); no users at all gives 1.
    """
    if len(users) != len(weights):
        raise ValueError("users and weights must have the same length")
    total = sum(users)
    if total == 0 or len(users) < 2:
        return 1.0
    total_weight = sum(weights)
    x = 0.0
    for observed, w in zip(users, weights, strict=True):
        if w <= 0:
            continue
        expected = w / total_weight * total
        x += (observed - expected) ** 2 / expected
    return float(chi2.sf(x, len(users) - 1))
