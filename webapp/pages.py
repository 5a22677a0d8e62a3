"""The experiments pages: the list, one experiment's results, and the admin's confirmed actions.

Data comes only from the experiments domain's public functions, on the request's transaction.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, TypeAlias

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

import aggregation
import experiments
from kernel.auth import AuthUser, require_role
from kernel.deps import DbConn
from kernel.errors import DomainError, ValidationError, problem
from webapp import metric_views, session, views

__all__ = ["ExperimentPages", "Viewer", "page", "read_form", "remember_viewer", "today"]

# The signed-in analyst or admin (``webapp.routes.provide_viewer``).
Viewer: TypeAlias = NamedDependency[AuthUser]

_ACTIONS = {"paused": "Pause", "active": "Resume", "completed": "Complete"}
_FORM_LIMIT = 16 * 1024


def today() -> dt.date:
    """The UTC day (the experiments' dates are UTC days)."""
    return dt.datetime.now(dt.UTC).date()


def page(
    request: Request[Any, Any, Any], template: str, context: dict[str, Any], status: int = 200
) -> Template:
    """A page with the layout's shared context: the viewer (when signed in) and the CSRF token (set as a
    cookie here when the browser has none, so the page's forms always carry a valid one)."""
    viewer = request.scope.get("webapp_viewer")
    token = request.cookies.get(session.CSRF) or session.new_csrf()
    shared = {"csrf": token, "viewer": viewer, "path": request.url.path}
    response = Template(template, context={**shared, **context}, status_code=status)
    if request.cookies.get(session.CSRF) != token:
        session.set_csrf(response, token, request.url.scheme == "https")
    return response


async def read_form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The POSTed form, after checking its CSRF field against the cookie (403 otherwise)."""
    form = await request.form()
    if not session.csrf_matches(request.cookies.get(session.CSRF), form.get(session.CSRF_FIELD)):
        raise PermissionDeniedException(
            "The form has expired or did not come from this app: reload the page."
        )
    return dict(form.items())


def remember_viewer(request: Request[Any, Any, Any], viewer: Viewer) -> None:
    request.scope["webapp_viewer"] = viewer  # type: ignore[typeddict-unknown-key]


async def _results_or_none(conn: asyncpg.Connection, name: str) -> experiments.ResultsOut | None:
    """An experiment's results for the list; None when they cannot be computed (the chip says so)."""
    try:
        return await experiments.results(conn, name)
    except DomainError:  # raised before any failing statement, so the page's transaction stays usable
        return None


def _forget_cached(request: Request[Any, Any, Any], name: str) -> None:
    """The assignment path caches definitions per process (as the API's PATCH, invalidate it)."""
    cache = getattr(request.app.state, "experiments", None)
    if cache is not None:
        cache.invalidate(name)


def _traffic(form: dict[str, Any], exp: experiments.ExperimentOut) -> list[experiments.VariantTraffic]:
    out = []
    for v in exp.variants:
        raw = str(form.get(f"traffic.{v.name}", "")).strip()
        try:
            out.append(experiments.VariantTraffic(v.name, decimal.Decimal(raw)))
        except decimal.InvalidOperation as exc:
            raise ValidationError(
                f"The traffic of {v.name} must be a number.",
                details=[problem(f"form.traffic.{v.name}", "must be a number")],
            ) from exc
    return out


class ExperimentPages(Controller):
    """``/app/experiments``: analysts read, admins also act (with a confirmation step)."""

    path = "/app/experiments"
    include_in_schema = False

    @get("/")
    async def index(self, request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer) -> Template:
        """Every experiment with its status, dates, units, split, primary metric and verdict chip."""
        remember_viewer(request, viewer)
        found = await experiments.list_experiments(conn)
        outs = await experiments.experiment_views(conn, [experiments.experiment_out(e) for e in found])
        order = {"active": 0, "paused": 1, "completed": 2}
        outs.sort(key=lambda e: (order.get(e.status, 3), e.name))
        day = today()
        rows = [views.experiment_row(e, await _results_or_none(conn, e.name), day) for e in outs]
        return page(request, "experiments.html", {"title": "Experiments", "rows": rows})

    async def _view(self, conn: asyncpg.Connection, name: str) -> experiments.ExperimentOut:
        exp = experiments.experiment_out(await experiments.get_experiment(conn, name))
        return (await experiments.experiment_views(conn, [exp]))[0]

    @get("/{name:str}")
    async def detail(
        self,
        name: FromPath[str],
        request: Request[Any, Any, Any],
        conn: DbConn,
        viewer: Viewer,
        dimension: FromQuery[str | None] = None,
    ) -> Template:
        """One experiment's results: forest plots, p-values, SRM, power, verdicts; the cumulative chart per
        declared metric (the goal-event conversion without metrics); one dimension's slices when chosen."""
        remember_viewer(request, viewer)
        exp = await self._view(conn, name)
        res = await experiments.results(conn, name)
        context = views.experiment_page(exp, res, today())
        by_metric = metric_views.daily_charts(
            await experiments.daily_results(conn, name, alpha=res.alpha),
            {m.metric: m.kind for m in res.metrics},
        )
        cumulative = None
        if not by_metric:
            daily = await aggregation.query_experiment_daily(conn, exp.test_id)
            cumulative = views.cumulative_chart(exp, daily, res.alpha)
        sliced = None
        if dimension:
            found = await experiments.dimension_results(conn, name, dimension, alpha=res.alpha)
            sliced = metric_views.dimension_view(found, res.alpha)
        context.update(
            cumulative=cumulative,
            daily_charts=by_metric,
            dimensions=metric_views.DIMENSION_CHOICES,
            dimension=dimension or "",
            sliced=sliced,
            title=exp.name,
            actions=[(to, label) for to, label in _ACTIONS.items() if _allowed(exp.status, to)],
            done=request.query_params.get("done"),
        )
        return page(request, "experiment.html", context)

    @get("/{name:str}/status")
    async def confirm_status(
        self,
        name: FromPath[str],
        to: FromQuery[str],
        request: Request[Any, Any, Any],
        conn: DbConn,
        viewer: Viewer,
    ) -> Template:
        """Ask the admin to confirm a status change."""
        remember_viewer(request, viewer)
        require_role(viewer, "admin")
        exp = await self._view(conn, name)
        if to not in _ACTIONS:
            raise ValidationError("Unknown status.", details=[problem("query.to", "is not a status")])
        question = f"{_ACTIONS[to]} the experiment {exp.name}?"
        fields = {"to": to}
        return page(
            request,
            "confirm.html",
            {
                "title": question,
                "question": question,
                "exp": exp,
                "action": f"/app/experiments/{exp.name}/status",
                "fields": fields,
            },
        )

    @post("/{name:str}/status", status_code=303, request_max_body_size=_FORM_LIMIT)
    async def set_status(
        self, name: FromPath[str], request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer
    ) -> Response[Any]:
        """Pause, resume or complete (admin), after the confirmation page."""
        form = await read_form(request)
        require_role(viewer, "admin")
        to = str(form.get("to", ""))
        if to not in _ACTIONS:
            raise ValidationError("Unknown status.", details=[problem("form.to", "is not a status")])
        _forget_cached(request, name)
        await experiments.update_experiment(conn, name, experiments.ExperimentPatch(status=to), viewer)  # type: ignore[arg-type]
        _forget_cached(request, name)
        return Redirect(f"/app/experiments/{name}?done={to}", status_code=303)

    @post("/{name:str}/traffic", status_code=200, request_max_body_size=_FORM_LIMIT)
    async def set_traffic(
        self, name: FromPath[str], request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer
    ) -> Response[Any]:
        """Change the split (admin): the first POST shows the confirmation, the confirmed one applies it."""
        remember_viewer(request, viewer)
        form = await read_form(request)
        require_role(viewer, "admin")
        exp = await self._view(conn, name)
        traffic = _traffic(form, exp)
        if form.get("confirmed") != "yes":
            split = " / ".join(f"{t.name} {t.traffic_percentage} %" for t in traffic)
            question = f"Change the traffic of {exp.name} to {split}? This starts a new phase."
            fields = {f"traffic.{t.name}": str(t.traffic_percentage) for t in traffic}
            return page(
                request,
                "confirm.html",
                {
                    "title": "Change traffic",
                    "question": question,
                    "exp": exp,
                    "action": f"/app/experiments/{exp.name}/traffic",
                    "fields": fields,
                },
            )
        _forget_cached(request, name)
        await experiments.update_experiment(conn, name, experiments.ExperimentPatch(variants=traffic), viewer)
        _forget_cached(request, name)
        return Redirect(f"/app/experiments/{name}?done=traffic", status_code=303)


def _allowed(status: str, to: str) -> bool:
    return to != status and status != "completed"
