"""Experiment definitions as the hot path sees them, and the per-process cache that holds them.

The cache only saves the lookup: the assignment statement itself re-checks the experiment's status,
dates and traffic phase in the same round trip, so a stale entry (a PATCH in another process) is
detected and reloaded rather than believed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from experiments.bucketing import bucket_ranges, choose_variant, hash_v2

__all__ = ["Experiment", "ExperimentCache", "Variant", "weight"]

_HUNDRED = decimal.Decimal(100)


def weight(traffic_percentage: decimal.Decimal) -> float:
    """The GrowthBook weight of a percentage: the double nearest the exact decimal fraction.

    ``Decimal("7.78") / 100`` gives 0.0778, the literal a GrowthBook payload carries; the float
    ``7.78 / 100`` is 0.07780000000000001 (one ulp off for 28% of all 2-decimal percentages), which
    would move the users whose hash sits on that boundary.
    """
    return float(traffic_percentage / _HUNDRED)


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment."""

    variant_id: uuid.UUID
    name: str
    description: str | None
    traffic_percentage: decimal.Decimal
    position: int
    is_control: bool


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment and its variants in bucket (position) order."""

    test_id: uuid.UUID
    name: str
    description: str | None
    status: str
    start_date: dt.date
    end_date: dt.date | None
    phase: int
    goal_event: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    variants: tuple[Variant, ...]
    # What is assigned (docs/experiment-units.md): ``user``, ``anonymous`` or ``external``.
    unit: str = "user"
    ranges: tuple[tuple[float, float], ...] = field(init=False)

    def __post_init__(self) -> None:
        weights = [weight(v.traffic_percentage) for v in self.variants]
        object.__setattr__(self, "ranges", bucket_ranges(weights))

    @property
    def control(self) -> Variant:
        """The baseline variant."""
        return next(v for v in self.variants if v.is_control)

    def variant_by_id(self, variant_id: uuid.UUID) -> Variant:
        """The variant with this id (assignments made in any phase keep their variant)."""
        return next(v for v in self.variants if v.variant_id == variant_id)

    def choose(self, user_id: str) -> Variant:
        """The variant GrowthBook's SDK picks for ``user_id`` (seed = name, hash v2, coverage 1)."""
        index = choose_variant(hash_v2(self.name, user_id), self.ranges)
        if index < 0:
            # Unreachable while percentages sum to 100.00: the last range ends at ~1.0 > 0.9999.
            raise RuntimeError(f"experiment {self.name!r} has bucket ranges that do not cover [0, 1)")
        return self.variants[index]

    def not_running_reason(self, today: dt.date) -> str | None:
        """Why the experiment does not assign on ``today`` (UTC), or None when it does."""
        if self.status != "active":
            return f"Experiment {self.name!r} is {self.status}."
        if today < self.start_date:
            return f"Experiment {self.name!r} starts on {self.start_date.isoformat()}."
        if self.end_date is not None and today > self.end_date:
            return f"Experiment {self.name!r} ended on {self.end_date.isoformat()}."
        return None


Loader = Callable[[], Awaitable[list[Experiment]]]
OneLoader = Callable[[str], Awaitable[Experiment | None]]


class ExperimentCache:
    """Definitions by name and the list of running experiments, each kept ``ttl`` seconds.

    Misses are not cached (a new experiment is visible at once in every process). Writes in this
    process invalidate; other processes notice through the statement's phase and status check.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 1000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._by_name: dict[str, tuple[float, Experiment]] = {}
        self._running: tuple[float, list[Experiment]] | None = None

    def invalidate(self, name: str | None = None) -> None:
        """Forget one definition (and the running list), or everything."""
        if name is None:
            self._by_name.clear()
        else:
            self._by_name.pop(name, None)
        self._running = None

    async def get(self, name: str, load: OneLoader) -> Experiment | None:
        """The definition of ``name``, loading it on a miss or after the TTL."""
        now = time.monotonic()
        hit = self._by_name.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        exp = await load(name)
        if exp is None:
            self._by_name.pop(name, None)
            return None
        if len(self._by_name) >= self.max_entries:
            self._by_name.clear()
        self._by_name[name] = (now + self.ttl, exp)
        return exp

    async def running(self, load: Loader) -> list[Experiment]:
        """Experiments that are active and within their dates, as of the last load."""
        now = time.monotonic()
        if self._running is None or self._running[0] <= now:
            self._running = (now + self.ttl, await load())
        return self._running[1]
