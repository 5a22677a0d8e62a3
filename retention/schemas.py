"""Retention policy settings and the actions a run plans or takes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kernel.settings import env_int

__all__ = ["Action", "RetentionPolicy", "add_months", "month_label", "month_start", "upkeep_window"]

# The months upkeep can ever manage: four-digit years (as ingest stores), and a month after the last.
_FIRST_INDEX = 1000 * 12
_LAST_INDEX = 9999 * 12 + 10


def month_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def month_label(month: dt.date) -> str:
    """``2026-11``; ``0999-06`` for year 999 (``%Y`` is not used: glibc does not pad years < 1000)."""
    return f"{month.year:04d}-{month.month:02d}"


def add_months(day: dt.date, months: int) -> dt.date:
    """First of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _shift(month: dt.date, months: int) -> dt.date:
    index = min(max(month.year * 12 + month.month - 1 + months, _FIRST_INDEX), _LAST_INDEX)
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The seed's policy by default: aggregate after 12 months, drop raw after 24, logs after 6."""

    aggregate_after_months: int = 12
    raw_retention_months: int = 24
    log_retention_months: int = 6
    premake_months: int = 3
    purge_batch_size: int = 5_000
    lock_timeout_ms: int = 2_000
    lock_retries: int = 8

    @classmethod
    def from_env(cls) -> RetentionPolicy:
        """Windows from ``CORP_ASTRO_RETENTION_*`` variables, else the seed's defaults."""
        return cls(
            aggregate_after_months=env_int("CORP_ASTRO_RETENTION_AGGREGATE_MONTHS", 12),
            raw_retention_months=env_int("CORP_ASTRO_RETENTION_RAW_MONTHS", 24),
            log_retention_months=env_int("CORP_ASTRO_RETENTION_LOG_MONTHS", 6),
            premake_months=env_int("CORP_ASTRO_PARTITION_PREMAKE_MONTHS", 3),
            purge_batch_size=env_int("CORP_ASTRO_RETENTION_PURGE_BATCH", 5_000),
        )

    def __post_init__(self) -> None:
        if self.raw_retention_months < self.aggregate_after_months:
            raise ValueError("raw data must be kept at least as long as the aggregation window")
        if min(self.aggregate_after_months, self.log_retention_months, self.premake_months) < 0:
            raise ValueError("retention windows must not be negative")


def upkeep_window(now: dt.date, policy: RetentionPolicy) -> tuple[dt.date, dt.date]:
    """The first and last month upkeep may give partitions: the oldest retained month (``raw_retention_months``
    before ``now``'s; ingest rejects older events) through the last premade one. Clamped to years 1000-9999.
    """
    current = month_start(now)
    return _shift(current, -policy.raw_retention_months), _shift(current, policy.premake_months)


@dataclass(slots=True)
class Action:
    """One unit of retention work: what, on which target, how many rows, and why."""

    # create_partition | drain_default | out_of_window | odd_partition | finalise_month | drop_partition | purge
    action: str
    target: str
    rows: int | None
    reason: str
    status: str = "planned"  # planned | done | skipped | failed
    # The month a create_partition or drain_default acts on: carried as a date, never parsed back from target.
    month: dt.date | None = field(default=None, compare=False, repr=False)

    def line(self) -> str:
        """A one-line, human-readable description for the CLI."""
        rows = "" if self.rows is None else f"{self.rows:>12,} rows  "
        return f"{self.status:<8} {self.action:<16} {self.target:<36} {rows}{self.reason}"
