"""Experiment logic: definitions, sticky assignment, conversions and results. No HTTP, never commits.

Management and results run in the caller's transaction. Assignment takes the pool: its statement is
atomic on its own, so it runs outside an explicit transaction (no BEGIN/COMMIT), and concurrent requests
share one such statement (``experiments.assigner``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from msgspec import UNSET

from experiments import repository as repo
from experiments import stats
from experiments.assigner import AssignmentBatcher
from experiments.definitions import Experiment, ExperimentCache, Variant, weight
from experiments.errors import (
    DuplicateExperiment,
    DuplicateVariant,
    ExperimentNotFound,
    ExperimentNotRunning,
    InvalidExperiment,
    NotAssigned,
    UserNotFound,
)
from experiments.schemas import (
    AssignmentOut,
    Comparison,
    ConversionOut,
    ExperimentCreate,
    ExperimentOut,
    ExperimentPatch,
    PowerOut,
    ResultsOut,
    SrmOut,
    VariantOut,
    VariantResult,
)
from kernel import audit
from kernel.auth import AuthUser, utcnow
from kernel.db import uuid7
from kernel.errors import ValidationError

__all__ = [
    "Assignment",
    "assign",
    "assign_running",
    "create_experiment",
    "experiment_out",
    "get_experiment",
    "list_experiments",
    "parse_user_id",
    "record_conversion",
    "results",
    "update_experiment",
]

_HUNDRED = decimal.Decimal("100.00")
_CENT = decimal.Decimal("0.01")
# A statement that lost a race for the same row is repeated once per attempt; three is plenty.
_ATTEMPTS = 3
# The minimum detectable effect a results request may ask about, as a relative lift (0.01 % to 1,000 %):
# outside it the sample-size search leaves floating point (a zero or infinite effect size).
MDE_RANGE = (0.0001, 10.0)
# Below this, alpha / 2 underflows and the normal quantile is infinite.
MIN_ALPHA = 1e-10
_TRANSITIONS = {"active": {"paused", "completed"}, "paused": {"active", "completed"}, "completed": set()}


def _utc(value: dt.datetime) -> dt.datetime:
    """Stored times are naive UTC; the API says so explicitly."""
    return value.replace(tzinfo=dt.UTC)


def parse_user_id(raw: str) -> uuid.UUID:
    """A user id from a path or body: a UUID in any of its usual spellings, else 422."""
    try:
        return uuid.UUID(raw.strip())
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValidationError(f"user_id must be a UUID, got {raw[:64]!r}.", code="invalid_user_id") from exc


def experiment_out(exp: Experiment, today: dt.date | None = None) -> ExperimentOut:
    """The API view of a definition."""
    return ExperimentOut(
        test_id=exp.test_id,
        name=exp.name,
        description=exp.description,
        status=exp.status,
        start_date=exp.start_date,
        end_date=exp.end_date,
        control=exp.control.name,
        phase=exp.phase,
        goal_event=exp.goal_event,
        running=exp.not_running_reason(today or utcnow().date()) is None,
        variants=[
            VariantOut(
                v.variant_id,
                v.name,
                v.description,
                float(v.traffic_percentage),
                weight(v.traffic_percentage),
                v.is_control,
            )
            for v in exp.variants
        ],
        created_at=_utc(exp.created_at),
        updated_at=_utc(exp.updated_at),
    )


# --- Definitions -----------------------------------------------------------------------------------


def _check_percentages(named: Sequence[tuple[str, decimal.Decimal]]) -> None:
    """Each percentage in [0, 100] with at most 2 decimals; together exactly 100.00."""
    seen: set[str] = set()
    for name, pct in named:
        if name in seen:
            raise DuplicateVariant(name)
        seen.add(name)
        if not pct.is_finite() or pct < 0 or pct > _HUNDRED or pct != pct.quantize(_CENT, decimal.ROUND_DOWN):
            raise InvalidExperiment(
                f"traffic_percentage of {name!r} must be between 0 and 100 with at most 2 decimals.",
                details={"variant": name, "traffic_percentage": str(pct)},
            )
    total = sum((p for _, p in named), decimal.Decimal(0))
    if total != _HUNDRED:
        raise InvalidExperiment(
            f"traffic_percentage must sum to exactly 100.00, not {total}.", details={"sum": str(total)}
        )


async def create_experiment(conn: asyncpg.Connection, data: ExperimentCreate, actor: AuthUser) -> Experiment:
    """Validate and insert a new experiment (active from ``start_date``)."""
    _check_percentages([(v.name, v.traffic_percentage) for v in data.variants])
    if data.end_date is not None and data.end_date < data.start_date:
        raise InvalidExperiment("end_date must not be before start_date.")
    control = data.control if data.control is not None else data.variants[0].name
    if control not in {v.name for v in data.variants}:
        raise InvalidExperiment(f"control {control!r} is not one of the variants.")
    try:
        async with conn.transaction():  # a savepoint: a duplicate name leaves the request usable
            test_id = await repo.insert_experiment(
                conn,
                name=data.name,
                description=data.description,
                start_date=data.start_date,
                end_date=data.end_date,
                goal_event=data.goal_event,
                variants=[
                    (v.name, v.description, v.traffic_percentage, v.name == control) for v in data.variants
                ],
            )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateExperiment(data.name) from exc
    await audit.record(
        conn,
        "experiment_created",
        actor_user_id=actor.user_id,
        subject_id=str(test_id),
        details={"name": data.name},
    )
    exp = await repo.fetch_experiment(conn, data.name)
    assert exp is not None
    return exp


async def list_experiments(conn: asyncpg.Connection) -> list[Experiment]:
    """Every experiment."""
    return await repo.fetch_experiments(conn)


async def get_experiment(conn: asyncpg.Connection, name: str) -> Experiment:
    """One experiment, or ``ExperimentNotFound``."""
    exp = await repo.fetch_experiment(conn, name)
    if exp is None:
        raise ExperimentNotFound(name)
    return exp


async def update_experiment(
    conn: asyncpg.Connection, name: str, patch: ExperimentPatch, actor: AuthUser
) -> Experiment:
    """Change status, end date, description, goal event and/or traffic (a new phase).

    The test's row is locked for the transaction, so concurrent traffic changes get distinct phases.
    Sticky assignments are untouched: only users assigned from now on follow the new split.
    """
    exp = await repo.fetch_experiment(conn, name, for_update=True)
    if exp is None:
        raise ExperimentNotFound(name)
    fields: dict[str, Any] = {}
    if patch.status is not UNSET and patch.status != exp.status:
        if patch.status not in _TRANSITIONS[exp.status]:
            raise ExperimentNotRunning(
                f"Experiment {name!r} is {exp.status} and cannot become {patch.status}."
            )
        fields["status"] = patch.status
    if patch.end_date is not UNSET:
        if patch.end_date is not None and patch.end_date < exp.start_date:
            raise InvalidExperiment("end_date must not be before start_date.")
        fields["end_date"] = patch.end_date
    if patch.description is not UNSET:
        fields["description"] = patch.description
    if patch.goal_event is not UNSET:
        fields["goal_event"] = patch.goal_event
    changes: dict[str, Any] = {k: (str(v) if isinstance(v, dt.date) else v) for k, v in fields.items()}
    if patch.variants is not UNSET:
        new = {v.name: v.traffic_percentage for v in patch.variants}
        _check_percentages([(v.name, v.traffic_percentage) for v in patch.variants])
        if set(new) != {v.name for v in exp.variants}:
            raise InvalidExperiment(
                "variants must list exactly the experiment's variants: "
                + ", ".join(repr(v.name) for v in exp.variants)
                + "."
            )
        if any(new[v.name] != v.traffic_percentage for v in exp.variants):
            await repo.update_traffic(
                conn, exp.test_id, exp.phase + 1, {v.variant_id: new[v.name] for v in exp.variants}
            )
            changes["traffic"] = {k: str(v) for k, v in new.items()}
    await repo.update_experiment(conn, exp.test_id, fields)
    if changes:
        await audit.record(
            conn,
            "experiment_updated",
            actor_user_id=actor.user_id,
            subject_id=str(exp.test_id),
            details=changes,
        )
    updated = await repo.fetch_experiment(conn, name)
    assert updated is not None
    return updated


# --- Assignment ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's variant in one experiment."""

    experiment: Experiment
    variant: Variant
    assigned_at: dt.datetime
    new: bool

    def out(self) -> AssignmentOut:
        """The API view."""
        return AssignmentOut(self.experiment.name, self.variant.name, _utc(self.assigned_at), self.new)


async def _definition(pool: asyncpg.Pool, cache: ExperimentCache, name: str) -> Experiment:
    exp = await cache.get(name, lambda n: repo.fetch_experiment(pool, n))
    if exp is None:
        raise ExperimentNotFound(name)
    return exp


async def assign(
    pool: asyncpg.Pool, cache: ExperimentCache, batcher: AssignmentBatcher, name: str, user_id: uuid.UUID
) -> Assignment:
    """The user's variant: the stored one, else GrowthBook's choice under the current split (stored).

    Normally one statement, shared with concurrent requests (``batcher``). A definition found stale by
    the statement (another process paused it or changed its traffic) is reloaded and the statement
    repeated; so is a lost insert race.
    """
    exp = await _definition(pool, cache, name)
    for _ in range(_ATTEMPTS):
        reason = exp.not_running_reason(utcnow().date())
        if reason is not None:
            raise ExperimentNotRunning(reason)
        chosen = exp.choose(str(user_id))
        row = await batcher.submit(exp.test_id, user_id, chosen.variant_id, exp.phase, uuid7())
        if not row["user_ok"]:
            raise UserNotFound(user_id)
        if not row["test_ok"]:
            cache.invalidate(name)
            fresh = await repo.fetch_experiment(pool, name)
            if fresh is None:
                raise ExperimentNotFound(name)
            if fresh == exp:
                # The definition is current, so the date check failed on the server's clock.
                raise ExperimentNotRunning(f"Experiment {name!r} is not running today.")
            exp = fresh
            continue
        if row["new_variant"] is not None:
            return Assignment(exp, exp.variant_by_id(row["new_variant"]), row["new_at"], True)
        if row["old_variant"] is not None:
            return Assignment(exp, exp.variant_by_id(row["old_variant"]), row["old_at"], False)
    raise ExperimentNotRunning(f"Experiment {name!r} changed while assigning; retry.")


async def assign_running(pool: asyncpg.Pool, cache: ExperimentCache, user_id: uuid.UUID) -> list[Assignment]:
    """The user's variant in every running experiment, assigning where needed, in one statement.

    Experiments that stopped running since the cached list was loaded are left out.
    """
    running = await cache.running(lambda: repo.fetch_running(pool))
    pending = {e.test_id: e for e in running if e.not_running_reason(utcnow().date()) is None}
    out: dict[uuid.UUID, Assignment] = {}
    reloaded = False
    for _ in range(_ATTEMPTS):
        if not pending:
            break
        wanted = [(e.test_id, e.choose(str(user_id)).variant_id, e.phase, uuid7()) for e in pending.values()]
        rows = await repo.assign_many(pool, user_id, wanted)
        if rows and not rows[0]["user_ok"]:
            raise UserNotFound(user_id)
        stale: list[uuid.UUID] = []
        for row in rows:
            exp = pending[row["test_id"]]
            if not row["test_ok"]:
                stale.append(exp.test_id)
            elif row["new_variant"] is not None:
                out[exp.test_id] = Assignment(exp, exp.variant_by_id(row["new_variant"]), row["new_at"], True)
            elif row["old_variant"] is not None:
                out[exp.test_id] = Assignment(
                    exp, exp.variant_by_id(row["old_variant"]), row["old_at"], False
                )
            else:
                continue  # lost a race: repeated below
            del pending[exp.test_id]
        if stale:
            if reloaded:
                for test_id in stale:
                    pending.pop(test_id, None)
            else:
                reloaded = True
                cache.invalidate()
                fresh = {e.test_id: e for e in await repo.fetch_running(pool)}
                for test_id in stale:
                    if test_id in fresh:
                        pending[test_id] = fresh[test_id]
                    else:
                        pending.pop(test_id, None)
    if not running and not await repo.user_exists(pool, user_id):
        raise UserNotFound(user_id)
    return sorted(out.values(), key=lambda a: a.experiment.name)


# --- Conversions -----------------------------------------------------------------------------------


async def record_conversion(
    pool: asyncpg.Pool, cache: ExperimentCache, name: str, user_id: uuid.UUID
) -> ConversionOut:
    """Mark the user converted; only the first conversion counts (later calls return it, new=False).

    Accepted while the experiment is active or paused and not past its end date: exposed users keep
    converting during a pause, but nothing counts after the experiment is over.
    """
    exp = await _definition(pool, cache, name)
    if exp.status == "completed" or (exp.end_date is not None and utcnow().date() > exp.end_date):
        raise ExperimentNotRunning(f"Experiment {name!r} is over; conversions are no longer recorded.")
    for _ in range(_ATTEMPTS):
        row = await repo.convert(pool, exp.test_id, user_id)
        if not row["assigned"]:
            if not await repo.user_exists(pool, user_id):
                raise UserNotFound(user_id)
            raise NotAssigned(name, user_id)
        variant = exp.variant_by_id(row["variant_id"])
        if row["new_at"] is not None:
            return ConversionOut(name, variant.name, _utc(row["new_at"]), True)
        if row["old_at"] is not None:
            return ConversionOut(name, variant.name, _utc(row["old_at"]), False)
    raise ExperimentNotRunning(f"Conversion of user {user_id} in {name!r} kept racing; retry.")


# --- Results ---------------------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _interval(ci: tuple[float, float]) -> tuple[float, float] | None:
    return ci if math.isfinite(ci[0]) and math.isfinite(ci[1]) else None


async def results(
    conn: asyncpg.Connection, name: str, *, alpha: float = 0.05, mde: float = 0.05, power: float = 0.8
) -> ResultsOut:
    """Significance results from per-variant sufficient statistics counted in SQL.

    - ``p_value``/``absolute_*``: Welch t-test on the difference in conversion rates (gbstats
      ``TwoSidedTTest``, absolute); ``relative_*``: the same on the relative lift (delta method).
    - ``adjusted_p_value``: Holm across the comparisons; ``significant`` means adjusted p < alpha.
    - ``chance_to_beat_control``: gbstats' Bayesian effect test with its default flat prior.
    - ``sequential_p_value``: Waudby-Smith et al. always-valid p-value (absolute difference).
    - ``srm``: observed users against the expected split, phase by phase (each phase's users against
      that phase's weights), so a traffic change is not reported as a mismatch.
    - ``power``: the relative lift detectable with ``power`` at the current users, and the total users
      needed to detect a relative lift of ``mde`` at the current split.
    """
    if not MIN_ALPHA <= alpha < power < 1 or not MDE_RANGE[0] <= mde <= MDE_RANGE[1]:
        raise ValidationError(
            f"Require {MIN_ALPHA} <= alpha < power < 1 and {MDE_RANGE[0]} <= mde <= {MDE_RANGE[1]} "
            "(a relative lift).",
            details={"alpha": alpha, "mde": mde, "power": power},
        )
    exp = await get_experiment(conn, name)
    counts = await repo.aggregate_assignments(conn, exp.test_id)
    weights = await repo.phase_weights(conn, exp.test_id)

    per_variant: dict[uuid.UUID, stats.ProportionStats] = {
        v.variant_id: stats.ProportionStats.of(0, 0) for v in exp.variants
    }
    phase_users: dict[int, int] = defaultdict(int)
    for r in counts:
        per_variant[r["variant_id"]] += stats.ProportionStats.of(r["users"], r["conversions"])
        phase_users[r["phase"]] += r["users"]
    phase_w: dict[tuple[int, uuid.UUID], float] = {
        (r["phase"], r["variant_id"]): float(r["traffic_percentage"]) / 100.0 for r in weights
    }
    total = sum(phase_users.values())
    if total:
        expected = {
            v.variant_id: sum(n * phase_w.get((ph, v.variant_id), 0.0) for ph, n in phase_users.items())
            / total
            for v in exp.variants
        }
    else:
        expected = {v.variant_id: float(v.traffic_percentage) / 100.0 for v in exp.variants}

    variants_out = [
        VariantResult(
            name=v.name,
            users=per_variant[v.variant_id].n,
            conversions=int(per_variant[v.variant_id].sum),
            conversion_rate=per_variant[v.variant_id].mean if per_variant[v.variant_id].n else None,
            expected_share=expected[v.variant_id],
        )
        for v in exp.variants
    ]

    control = exp.control
    a = per_variant[control.variant_id]
    comparisons: list[Comparison] = []
    for v in exp.variants:
        if v.is_control:
            continue
        b = per_variant[v.variant_id]
        absolute = stats.welch_test(a, b, alpha=alpha)
        relative = stats.welch_test(a, b, alpha=alpha, relative=True)
        sequential = stats.sequential_test(a, b, alpha=alpha)
        comparisons.append(
            Comparison(
                variant=v.name,
                absolute_lift=absolute.estimate if absolute else None,
                absolute_ci=_interval(absolute.ci) if absolute else None,
                relative_lift=relative.estimate if relative else None,
                relative_ci=_interval(relative.ci) if relative else None,
                p_value=_finite(absolute.p_value) if absolute else None,
                adjusted_p_value=None,
                significant=False,
                chance_to_beat_control=_finite(stats.chance_to_beat_control(a, b)),
                sequential_p_value=_finite(sequential.p_value) if sequential else None,
                note=None
                if absolute
                else "Not enough data: each variant needs 2+ users, and the rates must be strictly between 0 and 1.",
            )
        )
    tested = [c for c in comparisons if c.p_value is not None]
    for c, adj in zip(tested, stats.holm([c.p_value for c in tested if c.p_value is not None]), strict=True):
        c.adjusted_p_value = adj
        c.significant = adj < alpha

    srm_p = stats.srm_p_value(
        [per_variant[v.variant_id].n for v in exp.variants], [expected[v.variant_id] for v in exp.variants]
    )
    return ResultsOut(
        experiment=exp.name,
        status=exp.status,
        control=control.name,
        alpha=alpha,
        phase=exp.phase,
        variants=variants_out,
        comparisons=comparisons,
        srm=SrmOut(p_value=srm_p, detected=srm_p < stats.SRM_THRESHOLD),
        power=_power(exp, per_variant, alpha=alpha, mde=mde, power=power),
    )


def _power(
    exp: Experiment,
    per_variant: dict[uuid.UUID, stats.ProportionStats],
    *,
    alpha: float,
    mde: float,
    power: float,
) -> PowerOut:
    """Power of control vs the treatment with the fewest users (now) or the smallest weight (planning).

    Effect sizes are Cohen's d with the control's standard deviation sqrt(p(1 - p)), as in statsmodels'
    ``NormalIndPower`` with ``nobs1`` = control users and ``ratio`` = treatment / control.
    """
    control = exp.control
    treatments = [v for v in exp.variants if not v.is_control]
    a = per_variant[control.variant_id]
    p = a.mean
    sigma = math.sqrt(p * (1 - p))
    if a.n < 2 or sigma == 0:
        return PowerOut(
            None, None, None, mde, power, note="The control needs users and a rate strictly between 0 and 1."
        )
    note = None
    smallest = min(treatments, key=lambda v: per_variant[v.variant_id].n)
    n_t = per_variant[smallest.variant_id].n
    mde_now = mde_abs = None
    if n_t >= 2:
        try:
            d_now = stats.minimum_detectable_effect(a.n, alpha, power, ratio=n_t / a.n)
        except (ValueError, ArithmeticError):
            note = "No finite effect size reaches this power at the current users."
        else:
            mde_abs = d_now * sigma
            mde_now = mde_abs / p
    else:
        note = f"Variant {smallest.name!r} has too few users for a detectable effect."
    needed = None
    w_c = float(control.traffic_percentage)
    w_t = min(float(v.traffic_percentage) for v in treatments)
    if w_c > 0 and w_t > 0:
        try:
            nobs1 = stats.required_nobs1(mde * p / sigma, alpha, power, ratio=w_t / w_c)
            # Control users needed, scaled up to the whole experiment by the control's share of traffic.
            needed = math.ceil(nobs1 * 100.0 / w_c)
        except (ValueError, ArithmeticError):
            # A rate very near 0 or 1 can push the effect size past what the root finder brackets.
            note = "No finite sample size detects this lift at the control's current rate."
    else:
        note = "A variant has 0% of traffic, so no sample size reaches it."
    return PowerOut(mde_now, needed, mde_abs, mde, power, note=note)
