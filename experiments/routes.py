"""HTTP API of the experiments domain (Litestar). Controllers authenticate and decode; the service
authorises and decides.

Authentication of the assignment and conversion endpoints (``POST .../assignments``,
``GET /v1/users/{user_id}/assignments``, ``POST .../conversions``):

- an app's write key as the HTTP Basic **username** (password empty), as Segment SDKs send it;
- a user's own Bearer access token (its own user id only: another id answers 404);
- an admin's Bearer token (any user).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import asyncpg
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from experiments import service
from experiments.assigner import AssignmentBatcher
from experiments.definitions import Experiment, ExperimentCache
from experiments.metric_routes import MetricController, daily_results, dimension_results
from experiments.schemas import (
    AssignmentOut,
    ConversionOut,
    ExperimentCreate,
    ExperimentOut,
    ExperimentPatch,
    ResultsOut,
    UserAssignmentsOut,
    UserRef,
    decode,
)
from kernel.auth import AuthUser, Source, authenticate_caller, require_role
from kernel.deps import SKIP_COMPRESSION, CurrentUser, DbConn
from kernel.errors import AuthenticationError
from kernel.fastpath import FastRequest, FastResponse, FastRoute
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page

__all__ = ["fast_routes", "on_shutdown", "on_startup", "route_handlers"]

# Definitions are small; nothing a client sends here needs more.
_MAX_BODY = 64 * 1024
# The hot per-user routes answer a few hundred bytes at most.
_HOT: dict[str, Any] = {"request_max_body_size": _MAX_BODY, "opt": {SKIP_COMPRESSION: True}}


def _cache(state: State) -> ExperimentCache:
    cache: ExperimentCache = state.experiments
    return cache


def _batchers(state: State) -> tuple[AssignmentBatcher, AssignmentBatcher]:
    """The group commits of user assignments and of anonymous/external units' assignments."""
    return state.assignment_batcher, state.unit_assignment_batcher


def _hot_pool(state: State) -> asyncpg.Pool:
    # The kernel's pool; it skips asyncpg's per-release reset round trip (kernel.db).
    pool: asyncpg.Pool = state.db.pool
    return pool


async def _view(conn: asyncpg.Connection, exp: Experiment) -> ExperimentOut:
    """The API view of a definition with its metrics and analysis settings."""
    return (await service.experiment_views(conn, [service.experiment_out(exp)]))[0]


async def _caller(state: State, authorization: str) -> AuthUser | Source:
    """The write key's source (Basic username) or the Bearer token's user; 401 otherwise."""
    caller = await authenticate_caller(state, authorization)
    if caller is None:
        raise AuthenticationError("A write key (HTTP Basic username) or a Bearer access token is required.")
    return caller


def _request_caller(request: Request[Any, Any, Any]) -> Awaitable[AuthUser | Source]:
    return _caller(request.app.state, request.headers.get("authorization", ""))


async def _assign(state: State, name: str, authorization: str, body: bytes) -> AssignmentOut:
    """Both stacks' assignment: authenticate, decode, then one call into the service."""
    caller = await _caller(state, authorization)
    ref = decode(body, UserRef)
    return await service.assign_for(_hot_pool(state), _cache(state), _batchers(state), caller, name, ref)


async def _assign_fast(request: FastRequest) -> FastResponse:
    """``POST /v1/experiments/{name}/assignments`` on the kernel's fast path (see ``fast_routes``)."""
    out = await _assign(
        request.state, request.params["name"], request.headers.get("authorization", ""), request.body
    )
    return FastResponse(200, out)


class ExperimentController(Controller):
    """``/v1/experiments``: management (admin), results (analyst), assignment and conversions."""

    path = "/v1/experiments"
    tags = ["experiments"]

    @post("/", status_code=201, request_max_body_size=_MAX_BODY)
    async def create(
        self, request: Request[Any, Any, Any], conn: DbConn, current_user: CurrentUser
    ) -> ExperimentOut:
        """Create an experiment (admin). Percentages must sum to exactly 100.00."""
        require_role(current_user, "admin")
        data = decode(await request.body(), ExperimentCreate)
        exp = await service.create_experiment(conn, data, current_user)
        _cache(request.app.state).invalidate(exp.name)
        return await _view(conn, exp)

    @get("/")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
        cursor: CursorParam = None,
    ) -> Page[ExperimentOut]:
        """Every experiment by name (admin), ``{items, next_cursor}`` like every list (it was a bare array)."""
        require_role(current_user, "admin")
        return await service.experiment_page(conn, cursor, limit)

    @get("/{name:str}")
    async def get_one(self, name: FromPath[str], conn: DbConn, current_user: CurrentUser) -> ExperimentOut:
        """One experiment (admin)."""
        require_role(current_user, "admin")
        return await _view(conn, await service.get_experiment(conn, name))

    @patch("/{name:str}", request_max_body_size=_MAX_BODY)
    async def update(
        self, name: FromPath[str], request: Request[Any, Any, Any], conn: DbConn, current_user: CurrentUser
    ) -> ExperimentOut:
        """Change status, end date, description, goal event or traffic percentages (admin)."""
        require_role(current_user, "admin")
        data = decode(await request.body(), ExperimentPatch)
        # Invalidate before and after: a request racing this one must not keep the old entry.
        cache = _cache(request.app.state)
        cache.invalidate(name)
        exp = await service.update_experiment(conn, name, data, current_user)
        cache.invalidate(name)
        return await _view(conn, exp)

    @post("/{name:str}/assignments", status_code=200, **_HOT)
    async def assign(self, name: FromPath[str], request: Request[Any, Any, Any]) -> AssignmentOut:
        """The user's variant (sticky), assigned now if needed, in a statement shared with concurrent calls.

        In the running app the kernel's fast path serves this route (``fast_routes`` below) with the same
        code; this handler documents it in the OpenAPI schema and serves it where no fast path is installed.
        """
        return await _assign(
            request.app.state, name, request.headers.get("authorization", ""), await request.body()
        )

    @post("/{name:str}/conversions", status_code=200, **_HOT)
    async def convert(self, name: FromPath[str], request: Request[Any, Any, Any]) -> ConversionOut:
        """Record the user's conversion; only the first one counts (idempotent)."""
        caller = await _request_caller(request)
        ref = decode(await request.body(), UserRef)
        state = request.app.state
        return await service.convert_for(_hot_pool(state), _cache(state), caller, name, ref)

    @get("/{name:str}/results")
    async def results(
        self,
        name: FromPath[str],
        conn: DbConn,
        current_user: CurrentUser,
        alpha: FromQuery[float] = 0.05,
        mde: FromQuery[float] = 0.05,
        power: FromQuery[float] = 0.8,
    ) -> ResultsOut:
        """Significance, SRM and power (analyst or admin); counted in SQL, computed from the sums."""
        require_role(current_user, "analyst")
        return await service.results(conn, name, alpha=alpha, mde=mde, power=power)


@get("/v1/users/{user_id:str}/assignments", tags=["experiments"])
async def user_assignments(user_id: FromPath[str], request: Request[Any, Any, Any]) -> UserAssignmentsOut:
    """The user's variant in every running experiment, assigning where needed (one statement)."""
    caller = await _request_caller(request)
    return await service.assignments_for(
        _hot_pool(request.app.state), _cache(request.app.state), caller, user_id
    )


async def on_startup(app: Any) -> None:
    """The process's experiment-definition cache and assignment group commit."""
    app.state.experiments = ExperimentCache()
    app.state.assignment_batcher = AssignmentBatcher.for_pool(_hot_pool(app.state))
    app.state.unit_assignment_batcher = AssignmentBatcher.for_units(_hot_pool(app.state))


async def on_shutdown(app: Any) -> None:
    """Answer the assignments whose statement is running."""
    for attr in ("assignment_batcher", "unit_assignment_batcher"):
        batcher: AssignmentBatcher | None = getattr(app.state, attr, None)
        if batcher is not None:
            await batcher.close()


route_handlers: list[Any] = [
    ExperimentController,
    MetricController,
    dimension_results,
    daily_results,
    user_assignments,
]

# The apps call this once per user and experiment: the kernel serves it without Litestar's per-request
# machinery (``kernel.fastpath``), same auth, errors and request ids.
fast_routes = [
    FastRoute("POST", r"/v1/experiments/(?P<name>[^/]+)/assignments/?", _assign_fast, max_body=_MAX_BODY)
]
