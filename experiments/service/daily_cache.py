"""The daily series' closed days, each computed once and kept (``experiment_daily_results``).

A closed UTC day's point is the results statement's rows as of the end of that day; they change only if
data for the day arrives later, or the analysis changes. So each closed day is stored with:

- ``analysis_hash``: the statement and its parameters (metrics, windows, caps, CUPED lookback, unit);
  another hash (a metric redefined, CUPED switched) makes the day stale;
- a data watermark ``W`` (``ingested_through``, the transaction's start less ``OVERLAP``) and the number of
  late-data candidates created after ``W`` when it was set: metric events with a timestamp before the
  day's end (by ``analytics_events.created_at``), and identity links to the test's units exposed by then
  (by ``experiment_identity_links.created_at``). Counted *before* the day's rows are read, so whatever the
  rows include is counted; a larger count later means late data, for that day and every later one.
  ``OVERLAP`` covers a transaction that took ``created_at`` before ``W`` and committed after the count.

``refresh`` validates the stored days in one statement per watermark (an index range over what was
ingested since), moves the watermark of the valid ones forward, and recomputes the missing and stale
ones with the live statement (``Plan.fetch(until=end of day)``), within an optional budget. The
scheduled job (``experiments.daily_results``) and the endpoint both call it; only the holder of the
test's advisory lock writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from experiments import daily_repository as repo
from experiments import metric_sql
from experiments.definitions import Experiment
from experiments.service.metric_results import Plan
from kernel.scheduler import try_job_lock

__all__ = ["OVERLAP", "Budget", "analysis_hash", "day_end", "lock", "refresh"]

OVERLAP = dt.timedelta(minutes=5)
# Bumped when what a stored row means changes (its encoding, or the statement's semantics beyond its SQL).
_FORMAT = 1
Rows = list[dict[str, Any]]


@dataclass
class Budget:
    """How much one job run may recompute: ``days`` in all, and no new day after ``seconds``."""

    days: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    recomputed: int = 0

    def allows(self) -> bool:
        return self.recomputed < self.days and time.monotonic() - self.started < self.seconds


def day_end(day: dt.date) -> dt.datetime:
    """The end of a UTC day (the next midnight), the ``until`` of its point."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def analysis_hash(plan: Plan, units: metric_sql.UnitSource) -> str:
    """What the stored rows depend on: the statement's text and its parameters other than the test."""
    ratios = [
        (plan.index[m.parts[0].metric_id], plan.index[m.parts[1].metric_id]) for m in plan.ratio_metrics
    ]
    sql = metric_sql.build(units, plan.parts, ratios, plan.lookback is not None)
    key = json.dumps([_FORMAT, sql, [p.event for p in plan.parts], plan.lookback])
    return hashlib.sha256(key.encode()).hexdigest()


def _encode(rows: Rows) -> Rows | None:
    """The rows as JSON values (None: a value JSON cannot hold exactly, so the day is not stored)."""
    out = []
    for r in rows:
        row: dict[str, Any] = {}
        for k, v in r.items():
            if k in ("sv", "sd"):  # the join's copies of variant_id and dim
                continue
            if isinstance(v, uuid.UUID):
                v = str(v)
            elif isinstance(v, Decimal):  # sums of counts
                if v != v.to_integral_value():
                    return None
                v = int(v)
            elif isinstance(v, float) and not math.isfinite(v):
                return None
            row[k] = v
        out.append(row)
    return out


def _decode(sums: Rows) -> Rows:
    return [{**r, "variant_id": uuid.UUID(r["variant_id"])} for r in sums]


def _events(plan: Plan) -> list[str]:
    return sorted({p.event for p in plan.parts if p.event})


class _Late:
    """Cumulative late-data counts per day from ``late_counts`` rows: (events, links) after W_old, W_new."""

    def __init__(self, rows: Sequence[asyncpg.Record]) -> None:
        self.per_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for r in rows:
            at = 0 if r["kind"] == "e" else 1
            self.per_day[r["day"]][at] += r["old"]
            self.per_day[r["day"]][at + 2] += r["new"]

    def upto(self, day: dt.date) -> tuple[int, int, int, int]:
        """(events old, links old, events new, links new) of every day up to ``day``."""
        total = [0, 0, 0, 0]
        for d, counts in self.per_day.items():
            if d <= day:
                total = [a + b for a, b in zip(total, counts, strict=True)]
        return total[0], total[1], total[2], total[3]


async def _validate(
    conn: asyncpg.Connection, exp: Experiment, plan: Plan, stored: list[repo.StoredDay],
    new_w: dt.datetime, until: dt.datetime,
) -> tuple[dict[dt.date, Rows], list[tuple[dt.date, int, int]], _Late]:  # fmt: skip
    """The stored days still valid (their rows), their new tails after ``new_w``, and the counts after
    ``new_w`` for the days computed now. One ``late_counts`` per distinct watermark."""
    valid: dict[dt.date, Rows] = {}
    moved: list[tuple[dt.date, int, int]] = []
    fresh: _Late | None = None
    for w in sorted({s[4] for s in stored}) or [new_w]:
        late = _Late(await repo.late_counts(conn, exp.unit, exp.test_id, _events(plan), w, new_w, until))
        fresh = fresh or late
        for day, _h, sums, _at, at_w, tail_e, tail_l in stored:
            if at_w != w:
                continue
            old_e, old_l, new_e, new_l = late.upto(day)
            if (old_e, old_l) == (tail_e, tail_l):
                valid[day] = _decode(sums)
                if new_w > at_w:
                    moved.append((day, new_e, new_l))
    assert fresh is not None
    return valid, moved, fresh


async def lock(conn: asyncpg.Connection, test_id: uuid.UUID) -> bool:
    """The test's cache lock for this transaction (False: another transaction writes it now)."""
    return await try_job_lock(conn, f"experiments.daily_results:{test_id}")


async def refresh(
    conn: asyncpg.Connection,
    exp: Experiment,
    plan: Plan,
    units: metric_sql.UnitSource,
    days: Sequence[dt.date],
    *,
    write: bool,
    budget: Budget | None = None,
) -> dict[dt.date, Rows]:
    """The rows of each closed day of ``days`` (ascending, before today): stored ones still valid, the
    others computed now (within ``budget``; a day beyond it is left out). With ``write`` (the caller
    holds ``lock``) the computed days are stored and the valid ones' watermarks moved. Runs in the
    caller's transaction."""
    if not days:
        return {}
    digest = analysis_hash(plan, units)
    new_w = await repo.clock(conn) - OVERLAP
    stored = [s for s in await repo.fetch_stored(conn, exp.test_id, days[0], days[-1]) if s[1] == digest]
    out, moved, late = await _validate(conn, exp, plan, stored, new_w, day_end(days[-1]))
    computed: list[tuple[dt.date, Rows, int, int]] = []
    for day in days:
        if day in out:
            continue
        if budget is not None and not budget.allows():
            break
        out[day] = await plan.fetch(conn, exp, units, until=day_end(day))
        if budget is not None:
            budget.recomputed += 1
        sums = _encode(out[day])
        if sums is not None:
            _e, _l, new_e, new_l = late.upto(day)
            computed.append((day, sums, new_e, new_l))
    if write:
        await repo.advance(conn, exp.test_id, new_w, moved)
        await repo.save_days(conn, exp.test_id, digest, new_w, computed)
    return out
