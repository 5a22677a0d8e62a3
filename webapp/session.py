"""The web app's cookies: the session (access and refresh tokens) and the CSRF token, scoped to ``/app``.

- ``ca_session`` holds the access token and ``ca_refresh`` the refresh token of an accounts login: both
  HttpOnly, SameSite=Lax, ``Secure`` when the page is served over https, path ``/app`` (the API never
  sees them, so a cookie can never stand in for a Bearer token there).
- ``ca_csrf`` is a random token, HttpOnly, SameSite=Lax (Strict would drop it when a page is opened from a
  link on another site, and that page's forms would then fail), set by any page shown without it; every
  form carries it in a hidden ``_csrf`` field and a POST whose field does not match is refused
  (the double-submit pattern; SameSite=Lax on the session already keeps cross-site POSTs unauthenticated).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from litestar import Response

__all__ = [
    "CSRF",
    "CSRF_FIELD",
    "PATH",
    "REFRESH",
    "SESSION",
    "Cookies",
    "clear",
    "csrf_matches",
    "new_csrf",
    "set_csrf",
    "store",
]

PATH = "/app"
SESSION = "ca_session"
REFRESH = "ca_refresh"
CSRF = "ca_csrf"
CSRF_FIELD = "_csrf"


@dataclass(frozen=True, slots=True)
class Cookies:
    """A login's tokens and how long the refresh token lives."""

    access_token: str
    refresh_token: str
    max_age: int


def new_csrf() -> str:
    """A fresh CSRF token (256 random bits)."""
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, field: Any) -> bool:
    """Whether a form's ``_csrf`` field equals the CSRF cookie (constant time)."""
    return bool(cookie) and isinstance(field, str) and hmac.compare_digest(cookie or "", field)


def store(response: Response[Any], cookies: Cookies, secure: bool) -> None:
    """Put a login's tokens in the session cookies."""
    for key, value in ((SESSION, cookies.access_token), (REFRESH, cookies.refresh_token)):
        response.set_cookie(
            key, value, max_age=cookies.max_age, path=PATH, secure=secure, httponly=True, samesite="lax"
        )


def set_csrf(response: Response[Any], token: str, secure: bool) -> None:
    """The CSRF cookie (kept for a month; the same token serves every form of the session)."""
    response.set_cookie(
        CSRF, token, max_age=30 * 86_400, path=PATH, secure=secure, httponly=True, samesite="lax"
    )


def clear(response: Response[Any], secure: bool) -> None:
    """Forget the session (the CSRF token stays: the sign-in form needs it)."""
    for key in (SESSION, REFRESH):
        response.set_cookie(key, "", max_age=0, path=PATH, secure=secure, httponly=True, samesite="lax")
