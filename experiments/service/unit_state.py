"""Per-unit metric state: when results can be read from it, and one experiment's fold.

The state (``experiment_unit_values``) is built for one analysis definition (``definition``: the unit,
the event bound, the CUPED lookback and each event metric's kind, event, property and window; caps and
the CUPED switch apply when reading, so changing them needs no rebuild) and holds the events ingested
before its mark's ``ingested_through``. A request reads it only when the definition matches and the
mark is at most ``MAX_LAG`` old, and folds the events ingested since the mark into what it reads, so
the answer is the live statement's, exact, whatever the lag. docs/experiments-metrics.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from experiments import unit_state_repository as repo
from experiments.definitions import Experiment
from experiments.metric_definitions import MetricDef
from experiments.unit_state_sql import Layout

__all__ = ["MAX_LAG", "definition", "read_state", "refresh", "until_of"]

# A request folds the events ingested since the mark itself, exactly, at a cost that grows with them:
# bench results at 1,000,000 units, a day's events not folded cost 5.1 s against 1.3 s folded and the
# live statement's 25.2 s (21.3 s before the count check and the single pass), so past a day the job
# is taken to be down and the live statement is read.
MAX_LAG = dt.timedelta(days=1)


def until_of(exp: Experiment) -> dt.datetime:
    """The end of the experiment's end date (events and exposures before it count); open: no bound."""
    if exp.end_date is None:
        return dt.datetime.max
    return dt.datetime.combine(exp.end_date + dt.timedelta(days=1), dt.time())


def definition(exp: Experiment, parts: Sequence[MetricDef], history: int) -> str:
    """A hash of what the state's pieces depend on."""
    spec: list[Any] = [exp.unit, until_of(exp).isoformat(), history]
    spec += [[p.kind, p.event, p.property_name, p.window_hours, p.retention_days] for p in parts]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def _fold(
    exp: Experiment, parts: Sequence[MetricDef], history: int, lo: dt.datetime | None, hi: dt.datetime | None
) -> repo.Fold:
    return repo.Fold(exp.test_id, exp.unit, Layout(tuple(parts)), until_of(exp), history, lo, hi)


async def read_state(
    conn: asyncpg.Connection,
    exp: Experiment,
    parts: Sequence[MetricDef],
    ratios: Sequence[tuple[int, int]],
    *,
    cuped: bool,
    history: int,
) -> list[dict[str, Any]] | None:
    """The rows of ``metric_sql.fetch_sums`` (no dimension, as of now) from the state, or None when the
    state is missing, built for another definition or more than ``MAX_LAG`` (read now) behind."""
    mark = await repo.fetch_mark(conn, exp.test_id)
    if mark is None or mark["definition"] != definition(exp, parts, history) or mark["lag"] > MAX_LAG:
        return None
    rows = await repo.read_sums(
        conn, _fold(exp, parts, history, mark["ingested_through"], None), ratios, cuped
    )
    return [{k: v for k, v in r.items() if k != "same"} for r in rows]


async def refresh(
    conn: asyncpg.Connection, exp: Experiment, parts: Sequence[MetricDef], history: int, hi: dt.datetime
) -> int:
    """Bring the experiment's state to ``hi`` (``repo.horizon``): fold the events ingested since its
    mark, or rebuild it when there is none or the definition changed (then its statistics are refreshed:
    ``repo.analyze``). The unit rows written."""
    want = definition(exp, parts, history)
    mark = await repo.fetch_mark(conn, exp.test_id)
    lo: dt.datetime | None = None
    if mark is not None and mark["definition"] == want:
        lo = mark["ingested_through"]
        if lo >= hi:
            return 0
    else:
        await repo.delete_values(conn, exp.test_id)
    written = await repo.fold(conn, _fold(exp, parts, history, lo, hi))
    if lo is None:
        await repo.analyze(conn)
    await repo.save_mark(conn, exp.test_id, want, hi)
    return written
