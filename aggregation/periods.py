"""Which periods a rollup job (re)computes, and what one period's run did. Free of Polars.

Late data: every ledger row stores the count and newest ``created_at`` of the raw events the run read (taken
from the very frame that was aggregated). Each job compares those with the current values per period over
its look-back window; a period whose values differ (an offline queue flushed, an import, an erasure) is
recomputed. Finalised days (retention contract) are never recomputed; late data for them is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregation import repository as repo
from aggregation.repository import HOUR, Fingerprint, day_start
from kernel.auth import utcnow

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "HOURLY_LOOKBACK",
    "JOBS",
    "LOOKBACK_DAYS",
    "NO_EVENTS",
    "WINDOW_DAYS",
    "PeriodResult",
    "candidates",
    "drop_finalised",
    "follow_up_days",
    "hourly_candidates",
    "record_failure",
]

_log = logging.getLogger("corp_astro.aggregation")

JOBS = ("hourly", "daily", "active_users", "conversions")
# How far back each run looks for late data; older changes need `corp-astro aggregate`.
LOOKBACK_DAYS = 35
HOURLY_LOOKBACK = dt.timedelta(hours=48)
# WAU/MAU windows: the day itself and the 6 / 29 days before it.
WINDOW_DAYS = 30
NO_EVENTS = Fingerprint(0, None)


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """What one (job, period) run did: ``ok``, ``failed``, ``busy`` (locked elsewhere), ``done`` (someone
    else finished it since it was listed) or ``finalised`` (skipped by contract)."""

    job: str
    period: dt.datetime
    status: str
    rows: int = 0
    error: str | None = None


def _changed(
    periods: Iterable[dt.datetime],
    current: dict[dt.datetime, Fingerprint],
    ledger: dict[dt.datetime, repo.LedgerRow],
    *,
    include_empty: bool,
) -> list[dt.datetime]:
    out = []
    for p in periods:
        row = ledger.get(p)
        now = current.get(p, NO_EVENTS)
        if row is None:
            if include_empty or now.events:
                out.append(p)
        elif row.status != "ok" or row.fingerprint != now:
            out.append(p)
    return out


async def drop_finalised(
    conn: asyncpg.Connection, job: str, periods: list[dt.datetime]
) -> tuple[list[dt.datetime], list[PeriodResult]]:
    """``periods`` split into those to run and the ``finalised`` results of those never to run again."""
    if not periods:
        return [], []
    final = await repo.finalised_days(conn, min(periods).date(), max(periods).date())
    kept, skipped = [], []
    for p in periods:
        if p.date() in final:
            # Raw data for a finalised day may already be gone: recomputing could only lose counts.
            _log.warning("late data for a finalised day ignored", extra={"job": job, "period": p.isoformat()})
            skipped.append(PeriodResult(job, p, "finalised"))
        else:
            kept.append(p)
    return kept, skipped


async def candidates(conn: asyncpg.Connection, job: str, today: dt.date) -> list[dt.datetime]:
    """Days of a daily ``job`` to recompute: changed, never run, or failed, over the look-back window."""
    lo = today - dt.timedelta(days=LOOKBACK_DAYS)
    current = {day_start(d): fp for d, fp in (await repo.day_fingerprints(conn, lo, today)).items()}
    ledger = await repo.ledger_rows(conn, job, day_start(lo), day_start(today))
    retry = await repo.retry_periods(conn, job, day_start(lo))
    days = [day_start(lo + dt.timedelta(days=i)) for i in range((today - lo).days)]
    return sorted(set(retry) | set(_changed(days, current, ledger, include_empty=True)))


async def hourly_candidates(conn: asyncpg.Connection, now: dt.datetime) -> list[dt.datetime]:
    """The last closed hour plus every changed or failed hour of the last 48 hours."""
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    lo = current_hour - HOURLY_LOOKBACK
    current = await repo.hour_fingerprints(conn, lo, current_hour)
    ledger = await repo.ledger_rows(conn, "hourly", lo, current_hour)
    retry = await repo.retry_periods(conn, "hourly", lo)
    hours = [lo + i * HOUR for i in range(int(HOURLY_LOOKBACK / HOUR))]
    changed = set(_changed(hours, current, ledger, include_empty=False)) | set(retry)
    # The last closed hour always gets a ledger row, even when empty, so "no data" is visible.
    if (current_hour - HOUR) not in ledger:
        changed.add(current_hour - HOUR)
    return sorted(changed)


def follow_up_days(results: list[PeriodResult], today: dt.date) -> list[dt.datetime]:
    """Days whose active users depend on a day recomputed in ``results`` (the 29 days after it, up to
    yesterday), other than the recomputed days themselves."""
    redone = {r.period.date() for r in results if r.status == "ok"}
    follow = {
        d + dt.timedelta(days=i)
        for d in redone
        for i in range(1, WINDOW_DAYS)
        if d + dt.timedelta(days=i) < today
    }
    return [day_start(d) for d in sorted(follow - redone)]


async def record_failure(
    conn: asyncpg.Connection, job: str, period: dt.datetime, started: dt.datetime, error: str
) -> None:
    """The ledger row of a failed run (written after its own transaction rolled back)."""
    await repo.record_run(
        conn, job, period, status="failed", rows=0, fingerprint=None,
        started_at=started, finished_at=utcnow(), error=error,
    )  # fmt: skip
