"""Conversions, all written here (docs/conversions.md): explicit ones from the API, and the goal-event
job's, which reads only the goal events ingested since its last run."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from experiments import conversion_repository as conv_repo
from experiments import identity_repository as id_repo
from experiments import repository as repo
from experiments.definitions import ExperimentCache
from experiments.errors import ExperimentNotRunning, NotAssigned, UserNotFound
from experiments.schemas import ConversionOut
from experiments.service.common import ATTEMPTS, definition, utc
from kernel.auth import utcnow

__all__ = ["INGEST_OVERLAP", "convert_goal_events", "goal_scans", "record_conversion"]

# How far before its watermark a run reads again. created_at is the start of ingest's flush
# transaction, so rows of a transaction that began before the last run but committed after it carry an
# older created_at than that run's watermark; re-reading this much catches every such commit that took
# less. Re-reading is harmless: the rule only ever converts or moves converted_at earlier.
INGEST_OVERLAP = dt.timedelta(minutes=5)


async def record_conversion(
    pool: asyncpg.Pool, cache: ExperimentCache, name: str, user_id: uuid.UUID
) -> ConversionOut:
    """Mark the user converted; only the first conversion counts (later calls return it, new=False).

    Accepted while the experiment is active or paused and not past its end date: exposed users keep
    converting during a pause, but nothing counts after the experiment is over.
    """
    exp = await definition(pool, cache, name)
    if exp.status == "completed" or (exp.end_date is not None and utcnow().date() > exp.end_date):
        raise ExperimentNotRunning(f"Experiment {name!r} is over; conversions are no longer recorded.")
    for _ in range(ATTEMPTS):
        row = await conv_repo.convert(pool, exp.test_id, user_id)
        if not row["assigned"]:
            if not await repo.user_exists(pool, user_id):
                raise UserNotFound(user_id)
            raise NotAssigned(name, user_id)
        variant = exp.variant_by_id(row["variant_id"])
        if row["new_at"] is not None:
            return ConversionOut(name, variant.name, utc(row["new_at"]), True)
        if row["old_at"] is not None:
            return ConversionOut(name, variant.name, utc(row["old_at"]), False)
    raise ExperimentNotRunning(f"Conversion of user {user_id} in {name!r} kept racing; retry.")


def _scan(row: asyncpg.Record) -> conv_repo.GoalScan:
    since: dt.datetime | None = row["ingested_through"]
    end: dt.date | None = row["end_date"]
    return conv_repo.GoalScan(
        test_id=row["test_id"],
        goal_event=row["goal_event"],
        ingested_since=None if since is None else since - INGEST_OVERLAP,
        earliest=row["earliest"],
        # Conversions stop with the experiment's last day, as the API's do.
        until=None if end is None else dt.datetime.combine(end + dt.timedelta(days=1), dt.time()),
        unit=row["unit"],
    )


async def goal_scans(
    conn: asyncpg.Connection,
) -> tuple[list[conv_repo.GoalScan], list[tuple[uuid.UUID, str]]]:
    """What the next run reads: a scan per convertible test with assignments, and every convertible test."""
    tests = await conv_repo.convertible_tests(conn)
    # A test without assignments has nothing to convert, and its watermark advances all the same: every
    # event is judged against the assignments that exist when it is read (docs/conversions.md).
    scans = [_scan(r) for r in tests if r["earliest"] is not None]
    return scans, [(r["test_id"], r["goal_event"]) for r in tests]


async def convert_goal_events(conn: asyncpg.Connection) -> int:
    """One incremental run of the goal-event rule; the number of assignments converted or moved earlier.

    First the identify/alias events ingested since the last run become identity links
    (docs/experiment-units.md), so that this run's conversions of anonymous and external units see
    them. Runs in ``conn``'s transaction: the links, the conversions and the new watermarks commit
    together, so a failed run leaves the old watermarks and the next run reads the same events again.
    """
    since = await id_repo.link_watermark(conn)
    relinked = await id_repo.link_identities(conn, None if since is None else since - INGEST_OVERLAP)
    await id_repo.save_link_watermark(conn)
    scans, tests = await goal_scans(conn)
    changed = await conv_repo.convert_goal_events(conn, [s for s in scans if s.unit == "user"])
    changed += await id_repo.convert_unit_goal_events(conn, [s for s in scans if s.unit != "user"], relinked)
    if tests:
        await conv_repo.save_watermarks(conn, tests)
    return changed
