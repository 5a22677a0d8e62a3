"""``/app``: sign-in, sign-out, the pages' router, its static files and its HTML error pages.

This module is the web app's boundary: the sign-in's short transactions (the same three steps as
``POST /v1/auth/login``, throttling included) and the session's renewal open here; the pages
(``webapp.pages``, ``webapp.data_pages``) use the request's transaction (``DbConn``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router

import core_api.accounts as accounts
from kernel.auth import AuthUser, load_auth_user
from kernel.deps import Db, DbConn
from kernel.errors import AuthenticationError, DomainError, PermissionDeniedError
from kernel.http_errors import response_for
from kernel.resources import request_ip
from webapp import session
from webapp.data_pages import AnalyticsPage, ExportPages
from webapp.pages import ExperimentPages, Viewer, page, read_form

__all__ = ["route_handlers", "template_directories"]

HERE = Path(__file__).parent
template_directories = [HERE / "templates"]


class NotSignedIn(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, back_to: str) -> None:
        super().__init__("not signed in")
        self.back_to = back_to


class SessionRenewed(Exception):
    """The access token had expired and the refresh token was exchanged: the browser repeats its
    request (307 keeps a form's method and body) with the new cookies."""

    def __init__(self, cookies: session.Cookies, location: str) -> None:
        super().__init__("session renewed")
        self.cookies = cookies
        self.location = location


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def _here(request: Request[Any, Any, Any]) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def provide_viewer(request: Request[Any, Any, Any], conn: DbConn, db: Db) -> AuthUser:
    """The signed-in analyst or admin (403 for a user; a redirect to sign in without a session)."""
    state = request.app.state
    token = request.cookies.get(session.SESSION)
    if token:
        try:
            user = await load_auth_user(conn, state, token)
        except AuthenticationError:
            pass
        else:
            if not user.has_role("analyst"):
                raise PermissionDeniedError("This app is for analysts and admins.")
            return user
    refresh_token = request.cookies.get(session.REFRESH)
    if refresh_token:
        # Its own transaction: a reused token's revocation must commit even though this request fails.
        async with db.transaction() as tconn:
            outcome = await accounts.refresh(tconn, state.settings, refresh_token)
        if outcome.token is not None:
            t = outcome.token
            raise SessionRenewed(
                session.Cookies(t.access_token, t.refresh_token, t.refresh_expires_in), _here(request)
            )
    raise NotSignedIn(_here(request))


def _safe_next(raw: Any) -> str:
    """Where to go after signing in: a path inside the app, never another site."""
    text = raw if isinstance(raw, str) else ""
    if text.startswith("/app/") and not text.startswith("//") and "\\" not in text:
        return text
    return "/app/experiments"


def _login_page(request: Request[Any, Any, Any], error: str | None, status: int, email: str = "") -> Template:
    context = {"error": error, "email": email, "title": "Sign in"}
    return page(
        request, "login.html", {**context, "next": _safe_next(request.query_params.get("next"))}, status
    )


@get("/app/login", include_in_schema=False)
async def login_form(request: Request[Any, Any, Any]) -> Template:
    """The sign-in form (it also sets the CSRF cookie its POST needs)."""
    return _login_page(request, None, 200)


@post("/app/login", include_in_schema=False, status_code=303, request_max_body_size=8 * 1024)
async def login(request: Request[Any, Any, Any], db: Db) -> Response[Any]:
    """Email and password through the accounts domain's throttled login; a session cookie on success."""
    form = await read_form(request)
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    settings, hashing = request.app.state.settings, request.app.state.hashing
    try:
        attempt = accounts.LoginAttempt.of(email, request_ip(request))
        async with db.transaction() as conn:
            reservation = await accounts.reserve_login_attempt(conn, settings, attempt)
            user = await accounts.find_login_user(conn, attempt)
        checked = await accounts.check_password(hashing, user, password)
        async with db.transaction() as conn:
            outcome = await accounts.complete_login(conn, settings, attempt, reservation, user, checked)
        if outcome.error is not None:
            raise outcome.error
    except DomainError as exc:
        failure = response_for(request, exc)
        page_ = _login_page(request, exc.message, failure.status_code or 400, email)
        page_.headers.update({k: v for k, v in failure.headers.items() if k.lower() == "retry-after"})
        return page_
    assert outcome.token is not None
    t = outcome.token
    response: Response[Any] = Redirect(_safe_next(form.get("next")), status_code=303)
    session.store(
        response, session.Cookies(t.access_token, t.refresh_token, t.refresh_expires_in), _secure(request)
    )
    return response


@post("/app/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any], conn: DbConn, viewer: Viewer) -> Response[Any]:
    """Sign out everywhere (the accounts logout: every token of the account stops working)."""
    await read_form(request)
    await accounts.logout(conn, viewer, request_ip(request))
    response: Response[Any] = Redirect("/app/login", status_code=303)
    session.clear(response, _secure(request))
    return response


@get("/app", include_in_schema=False, status_code=303)
async def home() -> Redirect:
    """The experiments list is the app's front page."""
    return Redirect("/app/experiments", status_code=303)


def _to_login(request: Request[Any, Any, Any], exc: NotSignedIn) -> Response[Any]:
    response: Response[Any] = Redirect(f"/app/login?next={quote(exc.back_to, safe='/')}", status_code=303)
    session.clear(response, _secure(request))
    return response


def _renewed(request: Request[Any, Any, Any], exc: SessionRenewed) -> Response[Any]:
    response: Response[Any] = Response(b"", status_code=307, headers={"location": exc.location})
    session.store(response, exc.cookies, _secure(request))
    return response


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The API's status and message for the error, as an HTML page."""
    api = response_for(request, exc)
    content = api.content if isinstance(api.content, dict) else {}
    message = str(content.get("message") or "Something went wrong.")
    status = api.status_code or 500
    response = page(request, "error.html", {"title": f"Error {status}", "message": message}, status)
    response.headers.update({k: v for k, v in api.headers.items() if k.lower() == "retry-after"})
    return response


_static = create_static_files_router(
    path="/app/static",
    directories=[HERE / "static"],
    cache_control=CacheControlHeader(max_age=3600),
    include_in_schema=False,
)

app_router = Router(
    path="/",
    route_handlers=[login_form, login, logout, home, ExperimentPages, AnalyticsPage, ExportPages],
    dependencies={"viewer": Provide(provide_viewer)},
    exception_handlers={
        NotSignedIn: _to_login,
        SessionRenewed: _renewed,
        DomainError: _error_page,
        HTTPException: _error_page,
        ValidationException: _error_page,
    },
    include_in_schema=False,
)

route_handlers: list[Any] = [app_router, _static]
