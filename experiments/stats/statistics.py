"""Additive sufficient statistics: a group's data reduced to a few sums counted in SQL.

They are frozen and add up, so per-phase or per-day rows aggregated in SQL combine without revisiting
any unit. Each mirrors a gbstats 0.8.0 class (``gbstats.models.statistics``) field for field:

- ``SampleMeanStats``: ``(n, sum, sum_squares)``, gbstats ``SampleMeanStatistic``;
- ``ProportionStats``: a 0/1 metric with the plug-in variance ``p(1 - p)``, ``ProportionStatistic``;
- ``RatioStats``: numerator and denominator sums and their cross product (delta method),
  ``RatioStatistic``;
- ``RegressionAdjustedStats``: the metric after exposure, the same metric before it and their cross
  product (CUPED), ``RegressionAdjustedStatistic``. Its ``theta`` is pooled over the two arms compared,
  so ``adjust_pair`` returns fresh copies for each comparison (gbstats mutates a shared control).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, Self

__all__ = [
    "ProportionStats",
    "RatioStats",
    "RegressionAdjustedStats",
    "SampleMeanStats",
    "Statistic",
    "adjust_pair",
]


class Statistic(Protocol):
    """What the tests read: units, the (possibly adjusted) mean, the unadjusted one, the variance."""

    @property
    def n(self) -> int: ...

    @property
    def mean(self) -> float: ...

    @property
    def unadjusted_mean(self) -> float: ...

    @property
    def variance(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SampleMeanStats:
    """A continuous metric: count, sum and sum of squares (gbstats ``SampleMeanStatistic``)."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")

    def __add__(self, other: Self) -> Self:
        return type(self)(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)

    @property
    def mean(self) -> float:
        """The sample mean (0 for an empty group)."""
        return self.sum / self.n if self.n else 0.0

    @property
    def unadjusted_mean(self) -> float:
        """The mean itself (nothing adjusts it)."""
        return self.mean

    @property
    def variance(self) -> float:
        """The unbiased sample variance (n - 1 denominator); 0 below two observations."""
        if self.n <= 1:
            return 0.0
        return (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class ProportionStats(SampleMeanStats):
    """A 0/1 metric (conversions): ``sum_squares == sum``; variance ``p(1 - p)`` as in gbstats.

    gbstats' ``ProportionStatistic`` uses the plug-in (population) variance, not the n - 1 version; the
    golden tests depend on matching it exactly.
    """

    @classmethod
    def of(cls, users: int, conversions: int) -> ProportionStats:
        """Statistics of ``conversions`` successes among ``users``."""
        if not 0 <= conversions <= users:
            raise ValueError("conversions must be between 0 and users")
        return cls(users, float(conversions), float(conversions))

    @property
    def variance(self) -> float:
        """``p(1 - p)``."""
        p = self.mean
        return p * (1.0 - p)


def _covariance(n: int, sum_of_products: float, sum_x: float, sum_y: float) -> float:
    return 0.0 if n <= 1 else (sum_of_products - sum_x * sum_y / n) / (n - 1)


@dataclass(frozen=True, slots=True)
class RatioStats:
    """Σm / Σd over units, by the delta method (gbstats ``RatioStatistic``).

    ``m`` and ``d`` are the per-unit numerator and denominator statistics over the same ``n`` units;
    ``m_d_sum_of_products`` is Σ m·d.
    """

    n: int
    m: SampleMeanStats
    d: SampleMeanStats
    m_d_sum_of_products: float

    def __add__(self, other: RatioStats) -> RatioStats:
        return RatioStats(
            self.n + other.n,
            self.m + other.m,
            self.d + other.d,
            self.m_d_sum_of_products + other.m_d_sum_of_products,
        )

    @property
    def mean(self) -> float:
        """Σm / Σd (0 when the denominator sums to 0)."""
        return self.m.sum / self.d.sum if self.d.sum else 0.0

    @property
    def unadjusted_mean(self) -> float:
        """The ratio itself."""
        return self.mean

    @property
    def covariance(self) -> float:
        """Sample covariance of m and d per unit."""
        return _covariance(self.n, self.m_d_sum_of_products, self.m.sum, self.d.sum)

    @property
    def variance(self) -> float:
        """Per-unit delta-method variance: var_m/μd² - 2·cov·μm/μd³ + μm²·var_d/μd⁴."""
        mu_d = self.d.mean
        if mu_d == 0 or self.n <= 1:
            return 0.0
        mu_m = self.m.mean
        return (
            self.m.variance / mu_d**2
            - 2.0 * self.covariance * mu_m / mu_d**3
            + mu_m**2 * self.d.variance / mu_d**4
        )


@dataclass(frozen=True, slots=True)
class RegressionAdjustedStats:
    """CUPED: the metric after exposure (``post``) adjusted by its pre-exposure value (``pre``).

    mean = μ_post - θ·μ_pre; variance = var_post + θ²·var_pre - 2θ·cov (gbstats
    ``RegressionAdjustedStatistic``). ``theta`` is set per comparison by ``adjust_pair``.
    """

    n: int
    post: SampleMeanStats
    pre: SampleMeanStats
    post_pre_sum_of_products: float
    theta: float = 0.0

    def __add__(self, other: RegressionAdjustedStats) -> RegressionAdjustedStats:
        return RegressionAdjustedStats(
            self.n + other.n,
            self.post + other.post,
            self.pre + other.pre,
            self.post_pre_sum_of_products + other.post_pre_sum_of_products,
            self.theta,
        )

    @property
    def mean(self) -> float:
        """The adjusted mean."""
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        """The plain mean after exposure (the relative lift's denominator)."""
        return self.post.mean

    @property
    def covariance(self) -> float:
        """Sample covariance of post and pre per unit."""
        return _covariance(self.n, self.post_pre_sum_of_products, self.post.sum, self.pre.sum)

    @property
    def variance(self) -> float:
        """The adjusted per-unit variance."""
        if self.n <= 1:
            return 0.0
        return self.post.variance + self.theta**2 * self.pre.variance - 2.0 * self.theta * self.covariance


def _joint(a: SampleMeanStats, b: SampleMeanStats) -> SampleMeanStats:
    if type(a) is not type(b):
        raise ValueError("both arms of a metric must have the same statistic type")
    return a + b


def theta(a: RegressionAdjustedStats, b: RegressionAdjustedStats) -> float:
    """gbstats ``compute_theta``: cov(post, pre) / var(pre) pooled over both arms; 0 if either is flat."""
    post, pre = _joint(a.post, b.post), _joint(a.pre, b.pre)
    if pre.variance == 0 or post.variance == 0:
        return 0.0
    cov = _covariance(a.n + b.n, a.post_pre_sum_of_products + b.post_pre_sum_of_products, post.sum, pre.sum)
    return cov / pre.variance


def adjust_pair(control: Statistic, treatment: Statistic) -> tuple[Statistic, Statistic]:
    """The two statistics a test compares: CUPED pairs get their pooled θ (fresh copies, never mutated);
    with θ = 0 (no pre or post variance) they fall back to the plain post statistics, as gbstats does.
    Any other pair is returned unchanged."""
    if isinstance(control, RegressionAdjustedStats) and isinstance(treatment, RegressionAdjustedStats):
        t = theta(control, treatment)
        if t == 0:
            return control.post, treatment.post
        return dataclasses.replace(control, theta=t), dataclasses.replace(treatment, theta=t)
    return control, treatment
