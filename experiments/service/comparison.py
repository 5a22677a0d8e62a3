"""One treatment against the control: the tests every comparison reports, conversion and metrics alike."""

from __future__ import annotations

import math
from typing import NamedTuple

from experiments import stats
from experiments.stats import Statistic

__all__ = ["Tests", "run_tests"]


class Tests(NamedTuple):
    """The fields ``Comparison`` and ``MetricComparison`` share, named as they are; None where undefined."""

    absolute_lift: float | None
    absolute_ci: tuple[float, float] | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None
    chance_to_beat_control: float | None
    sequential_p_value: float | None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _interval(ci: tuple[float, float]) -> tuple[float, float] | None:
    return ci if math.isfinite(ci[0]) and math.isfinite(ci[1]) else None


def _chance(a: Statistic, b: Statistic, inverse: bool) -> float | None:
    above = stats.chance_to_beat_control(a, b)
    return None if above is None else 1.0 - above if inverse else above


def run_tests(a: Statistic, b: Statistic, alpha: float, *, inverse: bool = False) -> tuple[Tests, bool]:
    """Welch (absolute and relative), sequential and Bayesian for ``b`` against control ``a``; the flag
    says whether the data were enough for the t-test (the caller words its own note when not).

    ``inverse``: lower is better (a ``decrease`` metric), so the chance to beat the control is the chance
    to be below it, as gbstats' ``inverse=True``."""
    absolute = stats.welch_test(a, b, alpha=alpha)
    relative = stats.welch_test(a, b, alpha=alpha, relative=True)
    sequential = stats.sequential_test(a, b, alpha=alpha)
    tests = Tests(
        absolute_lift=absolute.estimate if absolute else None,
        absolute_ci=_interval(absolute.ci) if absolute else None,
        relative_lift=relative.estimate if relative else None,
        relative_ci=_interval(relative.ci) if relative else None,
        p_value=_finite(absolute.p_value) if absolute else None,
        chance_to_beat_control=_finite(_chance(a, b, inverse)),
        sequential_p_value=_finite(sequential.p_value) if sequential else None,
    )
    return tests, absolute is not None
