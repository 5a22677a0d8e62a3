"""Accounts logic: registration, login with throttling, the caller's profile, erasure, admin changes.

Functions take the caller's connection and never commit; the route (or CLI command) owns the
transaction. Argon2 hashing runs in a worker thread so a login never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import math
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from core_api import audit
from core_api.accounts import repository as repo
from core_api.accounts.errors import (
    AccountDisabledError,
    EmailTakenError,
    InvalidCredentialsError,
    LoginRateLimitedError,
    UserNotFoundError,
    WeakPasswordError,
)
from core_api.accounts.schemas import (
    AdminUserUpdate,
    RegisterRequest,
    TokenResponse,
    UserOut,
    UserUpdate,
)
from core_api.auth import AuthUser, create_access_token, hash_password, needs_rehash, utcnow, verify_password
from core_api.db import uuid7
from core_api.errors import ConflictError, DomainError, ValidationError
from core_api.pagination import Page, decode_cursor, make_page
from core_api.resources import changes, to_struct

if TYPE_CHECKING:
    from core_api.settings import Settings

__all__ = [
    "ACCOUNT_ATTEMPTS",
    "IP_ATTEMPTS",
    "THROTTLE_WINDOW",
    "LoginAttempt",
    "LoginOutcome",
    "admin_update_user",
    "check_password_policy",
    "complete_login",
    "erase_account",
    "find_login_user",
    "get_user",
    "list_users",
    "password_matches",
    "register",
    "reserve_login_attempt",
    "set_role",
    "update_me",
]

_log = logging.getLogger("corp_astro.accounts")

# Failed logins allowed per fixed window, per account and per client address. The address limit is
# higher because several people can share one (an office NAT).
ACCOUNT_ATTEMPTS = int(os.environ.get("CORP_ASTRO_LOGIN_ACCOUNT_ATTEMPTS", "5"))
IP_ATTEMPTS = int(os.environ.get("CORP_ASTRO_LOGIN_IP_ATTEMPTS", "30"))
THROTTLE_WINDOW = dt.timedelta(seconds=int(os.environ.get("CORP_ASTRO_LOGIN_WINDOW_SECONDS", "900")))

MIN_PASSWORD = 10
MAX_PASSWORD = 128
_COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "password1234",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "1q2w3e4r5t",
        "iloveyou123",
        "passw0rd123",
        "letmein1234",
        "administrator",
        "qwerty12345",
        "abcdefghij",
    }
)


def check_password_policy(password: str, email: str) -> None:
    """Raise ``WeakPasswordError`` (422) unless ``password`` meets the policy.

    NIST SP 800-63B style: length (10 to 128) rather than composition rules, plus rejection of
    passwords that are common, trivially repetitive, or contain the account's email name.
    """
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        problems.append(f"must be at most {MAX_PASSWORD} characters")
    if len(set(password)) < 5:
        problems.append("must use at least 5 different characters")
    lowered = password.lower()
    local = email.rpartition("@")[0].lower()
    if lowered in _COMMON_PASSWORDS:
        problems.append("is too common")
    if len(local) >= 4 and local in lowered:
        problems.append("must not contain the email address")
    if problems:
        raise WeakPasswordError(
            "The password does not meet the policy.",
            details=[{"field": "password", "message": f"The password {p}."} for p in problems],
        )


def _inet(ip: str | None) -> str | None:
    """``ip`` if it is an address PostgreSQL's inet accepts (the test client's peer is not)."""
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


# --- Registration --------------------------------------------------------------------------------


async def register(conn: asyncpg.Connection, data: RegisterRequest, *, role: str = "user") -> UserOut:
    """Create an active account with default preferences."""
    check_password_policy(data.password, data.email)
    password_hash = await asyncio.to_thread(hash_password, data.password)
    values = changes(data, exclude=("password",))
    values.update(password_hash=password_hash, role=role)
    user_id = uuid7()
    try:
        # A savepoint, so a duplicate leaves the caller's transaction usable (the CLI reports it).
        async with conn.transaction():
            row = await repo.insert_user(conn, user_id, values)
    except asyncpg.UniqueViolationError as exc:
        raise EmailTakenError("An account with this email already exists.") from exc
    await repo.insert_preferences(conn, uuid7(), user_id)
    return to_struct(UserOut, row)


# --- Login ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """Who is trying to log in, from where."""

    email: str
    ip: str | None

    @property
    def account_key(self) -> str:
        # Hashed so that the throttle table holds no email addresses.
        digest = hashlib.sha256(self.email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
        return f"acct:{digest}"

    @property
    def ip_key(self) -> str | None:
        return f"ip:{self.ip[:60]}" if self.ip else None


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """The result of a login, returned (not raised) so the failure's audit row still commits."""

    token: TokenResponse | None = None
    error: DomainError | None = None


async def reserve_login_attempt(conn: asyncpg.Connection, attempt: LoginAttempt) -> None:
    """Count this attempt against the account and the address before any password is checked.

    Counting first (and un-counting on success) means a burst of parallel guesses cannot all slip
    through before the first failure is recorded. Raises ``LoginRateLimitedError`` when a limit is
    reached; the caller's transaction then rolls back, so a refused attempt is not counted.
    """
    now = utcnow()
    keys = [(attempt.account_key, ACCOUNT_ATTEMPTS)]
    if attempt.ip_key:
        keys.append((attempt.ip_key, IP_ATTEMPTS))
    # Always account before address: a fixed lock order, so concurrent attempts cannot deadlock.
    for key, limit in keys:
        window_start, attempts = await repo.reserve_throttle(conn, key, now, THROTTLE_WINDOW)
        if attempts > limit:
            retry_after = max(1, math.ceil((window_start + THROTTLE_WINDOW - now).total_seconds()))
            _log.warning("login throttled", extra={"scope": key.split(":", 1)[0], "retry_after": retry_after})
            raise LoginRateLimitedError("Too many failed logins; try again later.", retry_after=retry_after)


async def find_login_user(conn: asyncpg.Connection, email: str) -> Any:
    """The account row (with its password hash) for a login, or None."""
    return await repo.get_user_by_email(conn, email.strip())


async def password_matches(user: Any, password: str) -> bool:
    """Verify in a worker thread; an unknown account burns the same time as a known one."""
    return await asyncio.to_thread(verify_password, user["password_hash"] if user else None, password)


async def complete_login(
    conn: asyncpg.Connection,
    settings: Settings,
    attempt: LoginAttempt,
    user: Any,
    password: str,
    password_ok: bool,
) -> LoginOutcome:
    """Record the outcome (audit, throttle, ``last_login_at``) and issue a token on success."""
    ip = _inet(attempt.ip)
    if user is None or not password_ok:
        await audit.record(
            conn,
            "login_failed",
            subject_id=str(user["user_id"]) if user else None,
            ip_address=ip,
            details={"reason": "bad_password" if user else "unknown_account"},
        )
        return LoginOutcome(error=InvalidCredentialsError("The email or password is wrong."))
    if user["status"] != "active":
        # Only after a correct password, so an account's status is not revealed to a guesser.
        await audit.record(
            conn,
            "login_failed",
            subject_id=str(user["user_id"]),
            ip_address=ip,
            details={"reason": f"account_{user['status']}"},
        )
        return LoginOutcome(error=AccountDisabledError(f"This account is {user['status']}."))
    rehashed = None
    if needs_rehash(user["password_hash"]):
        rehashed = await asyncio.to_thread(hash_password, password)
    await repo.set_last_login(conn, user["user_id"], rehashed)
    await repo.clear_throttle(conn, attempt.account_key)
    if attempt.ip_key:
        await repo.release_throttle(conn, attempt.ip_key)
    await audit.record(
        conn, "login", actor_user_id=user["user_id"], subject_id=str(user["user_id"]), ip_address=ip
    )
    token, ttl = create_access_token(settings, user["user_id"], user["role"])
    return LoginOutcome(
        token=TokenResponse(access_token=token, expires_in=ttl, user_id=user["user_id"], role=user["role"])
    )


# --- The caller's account ------------------------------------------------------------------------


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> UserOut:
    """A user's profile."""
    row = await repo.get_user(conn, user_id)
    if row is None:
        raise UserNotFoundError("No such user.")
    return to_struct(UserOut, row)


async def update_me(conn: asyncpg.Connection, user: AuthUser, data: UserUpdate, ip: str | None) -> UserOut:
    """Change the caller's profile; a new password needs the current one."""
    values = changes(data, exclude=("password", "current_password"))
    if isinstance(data.password, str) and isinstance(data.current_password, str):
        current = await repo.get_password_hash(conn, user.user_id)
        if not await asyncio.to_thread(verify_password, current, data.current_password):
            raise ValidationError(
                "The current password is wrong.",
                code="wrong_password",
                details=[{"field": "current_password", "message": "Does not match the account's password."}],
            )
        check_password_policy(data.password, user.email)
        values["password_hash"] = await asyncio.to_thread(hash_password, data.password)
        await audit.record(
            conn,
            "password_changed",
            actor_user_id=user.user_id,
            subject_id=str(user.user_id),
            ip_address=_inet(ip),
        )
    row = await repo.update_user(conn, user.user_id, values)
    if row is None:
        raise UserNotFoundError("No such user.")
    return to_struct(UserOut, row)


async def erase_account(conn: asyncpg.Connection, user: AuthUser, ip: str | None) -> dict[str, int]:
    """Erase the caller's account and everything it owns, keeping its analytics events unlinked."""
    counts = await repo.erase_user(conn, user.user_id)
    if counts["users"] != 1:
        raise UserNotFoundError("No such user.")
    await repo.clear_throttle(conn, LoginAttempt(user.email, None).account_key)
    await audit.record(
        conn,
        "account_erased",
        actor_user_id=user.user_id,
        subject_id=str(user.user_id),
        ip_address=_inet(ip),
        details={k: v for k, v in counts.items() if k != "users"},
    )
    return counts


# --- Administration ------------------------------------------------------------------------------


async def list_users(conn: asyncpg.Connection, *, cursor: str | None, limit: int) -> Page[UserOut]:
    """Every account, newest first (admin)."""
    after = decode_cursor(cursor, tuple[dt.datetime, uuid.UUID])
    rows = await repo.list_users(conn, after=after, limit=limit)
    return make_page(
        [to_struct(UserOut, r) for r in rows], limit, lambda u: (_naive(u.created_at), u.user_id)
    )


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None)


async def admin_update_user(
    conn: asyncpg.Connection, admin: AuthUser, user_id: uuid.UUID, data: AdminUserUpdate, ip: str | None
) -> UserOut:
    """Change another account's role, status or tier; role and status changes are audited."""
    values = changes(data)
    if user_id == admin.user_id and ("role" in values or "status" in values):
        raise ConflictError(
            "Admins cannot change their own role or status; ask another admin.", code="self_change"
        )
    before = await conn.fetchrow("SELECT role, status FROM users WHERE user_id = $1 FOR UPDATE", user_id)
    if before is None:
        raise UserNotFoundError("No such user.")
    row = await repo.update_user(conn, user_id, values)
    for field, action in (("role", "role_changed"), ("status", "account_status_changed")):
        if field in values and values[field] != before[field]:
            await audit.record(
                conn,
                action,
                actor_user_id=admin.user_id,
                subject_id=str(user_id),
                ip_address=_inet(ip),
                details={"from": before[field], "to": values[field], "via": "api"},
            )
    return to_struct(UserOut, row)


async def set_role(conn: asyncpg.Connection, email: str, role: str, *, via: str) -> tuple[str, str]:
    """Set the role of the account with ``email`` (the CLI); returns (old role, new role)."""
    row = await conn.fetchrow(
        "SELECT user_id, role FROM users WHERE lower(email) = lower($1) FOR UPDATE", email.strip()
    )
    if row is None:
        raise UserNotFoundError(f"No account with email {email!r}.")
    if row["role"] != role:
        await repo.update_user(conn, row["user_id"], {"role": role})
        await audit.record(
            conn,
            "role_changed",
            subject_id=str(row["user_id"]),
            details={"from": row["role"], "to": role, "via": via},
        )
    return row["role"], role
