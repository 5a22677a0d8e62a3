"""Retention policy settings and the actions a run plans or takes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kernel.settings import RetentionPolicy

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
    # | ledger_partitions (ingest's dedupe ledger, a partition a week)
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
