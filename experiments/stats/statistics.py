"""Additive sufficient statistics: a group's data reduced to ``(n, sum, sum_squares)``.

They are frozen and add up, so per-phase or per-day rows aggregated in SQL combine without revisiting
any user (gbstats works on the same three numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

__all__ = ["ProportionStats", "SampleMeanStats"]


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
