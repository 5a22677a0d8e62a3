"""Accounts logic: registration, login with throttling, the caller's profile, erasure, admin changes.

Functions take the caller's connection and never commit; the route (or CLI command) owns the
transaction. Password hashing runs on the bounded pool (``kernel.hashing``), and registration and
login hash outside any transaction: their routes hold no connection while argon2id runs.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from core_api import notifications
from core_api.accounts import repository as repo
from core_api.accounts import sessions, throttle
from core_api.accounts.emails import normalize_email
from core_api.accounts.errors import (
    AccountDisabledError,
    EmailTakenError,
    InvalidCredentialsError,
    UserNotFoundError,
)
from core_api.accounts.passwords import check_password_policy
from core_api.accounts.schemas import (
    AdminUserUpdate,
    RegisterRequest,
    TokenResponse,
    UserOut,
    UserUpdate,
)
from kernel import audit, events
from kernel.auth import AuthUser, needs_rehash, require_role
from kernel.db import uuid7
from kernel.errors import ConflictError, DomainError, ValidationError
from kernel.owned import OwnedResource
from kernel.resources import changes, to_struct

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kernel.hashing import PasswordHashing
    from kernel.hooks import UserErasedHook
    from kernel.settings import Settings

__all__ = [
    "LoginAttempt",
    "LoginOutcome",
    "admin_update_user",
    "check_password",
    "check_password_policy",
    "complete_login",
    "create_account",
    "erase_account",
    "find_login_user",
    "get_user",
    "logout",
    "reserve_login_attempt",
    "reserve_registration",
    "set_role",
    "update_me",
    "users",
]

_log = logging.getLogger("corp_astro.accounts")


def _inet(ip: str | None) -> str | None:
    """``ip`` if it is an address PostgreSQL's inet accepts (the test client's peer is not)."""
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


async def _audit_own(
    conn: asyncpg.Connection,
    action: str,
    user: AuthUser,
    ip: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit what the caller did to their own account."""
    await audit.record(
        conn,
        action,
        actor_user_id=user.user_id,
        subject_id=str(user.user_id),
        ip_address=_inet(ip),
        details=details,
    )


# --- Registration --------------------------------------------------------------------------------


async def reserve_registration(conn: asyncpg.Connection, settings: Settings, ip: str | None) -> None:
    """Count a registration per address and in all, or refuse it (429) before any work is done."""
    await throttle.reserve(conn, throttle.register_limits(settings.auth_limits, ip), registration=True)


async def create_account(
    conn: asyncpg.Connection, data: RegisterRequest, password_hash: str, *, role: str = "user"
) -> UserOut:
    """Insert an active account (``data.email`` is normalised) with default preferences."""
    values = changes(data, exclude=("password",))
    values.update(password_hash=password_hash, role=role)
    user_id = uuid7()
    try:
        row = await repo.users.insert(conn, {"user_id": user_id, **values})
    except asyncpg.UniqueViolationError as exc:
        # The boundary (the request or the command) rolls the transaction back and answers 409.
        raise EmailTakenError("An account with this email already exists.") from exc
    await repo.insert_preferences(conn, uuid7(), user_id)
    await events.emit(conn, "user.registered", {"user_id": user_id, "role": role})
    return to_struct(UserOut, row)


# --- Login ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """Who is trying to log in, from where; ``email`` in its normal form (``accounts.emails``)."""

    email: str
    ip: str | None

    @classmethod
    def of(cls, raw_email: str, ip: str | None) -> LoginAttempt:
        """An attempt for ``raw_email`` as typed. An address that does not normalise matches no
        account, but is still counted (by its case-folded text) and costs a password check."""
        try:
            email = normalize_email(raw_email)
        except ValueError:
            email = raw_email.strip().casefold()
        return cls(email, ip)


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """The result of a login, returned (not raised) so the failure's audit row still commits."""

    token: TokenResponse | None = None
    error: DomainError | None = None


async def reserve_login_attempt(
    conn: asyncpg.Connection, settings: Settings, attempt: LoginAttempt
) -> throttle.Reservation:
    """Count this attempt per account, per account and address, and per address, before any password
    is checked (``accounts.throttle``); 429 when a backoff is running."""
    return await throttle.reserve(
        conn, throttle.login_limits(settings.auth_limits, attempt.email, attempt.ip)
    )


async def find_login_user(conn: asyncpg.Connection, attempt: LoginAttempt) -> Any:
    """The account row (with its password hash) for a login, or None."""
    return await repo.get_user_by_email(conn, attempt.email)


async def check_password(hashing: PasswordHashing, user: Any, password: str) -> tuple[bool, str | None]:
    """(the password is right, a stronger hash to store or None). Holds no connection: an unknown
    account burns the same time as a known one."""
    ok = await hashing.verify(user["password_hash"] if user else None, password)
    rehashed = None
    if ok and needs_rehash(user["password_hash"]):
        rehashed = await hashing.hash(password)
    return ok, rehashed


async def _notify_locked(conn: asyncpg.Connection, settings: Settings, user: Any, ip: str | None) -> None:
    minutes = settings.auth_limits.account_lock_seconds // 60
    await notifications.notify(
        conn,
        user["user_id"],
        title="Your account was locked",
        body=(
            f"After many failed sign-in attempts from several places, sign-in to your account is paused "
            f"for {minutes} minutes. If this was not you, change your password once it reopens."
        ),
        type="security",
        data={"reason": "too_many_failed_logins", "locked_minutes": minutes},
    )
    await audit.record(
        conn, "account_locked", subject_id=str(user["user_id"]), ip_address=ip, details={"minutes": minutes}
    )


async def complete_login(
    conn: asyncpg.Connection,
    settings: Settings,
    attempt: LoginAttempt,
    reservation: throttle.Reservation,
    user: Any,
    checked: tuple[bool, str | None],
) -> LoginOutcome:
    """Record the outcome (audit, throttle, ``last_login_at``) and issue a token on success."""
    ip = _inet(attempt.ip)
    password_ok, rehashed = checked
    if user is None or not password_ok:
        await audit.record(
            conn,
            "login_failed",
            subject_id=str(user["user_id"]) if user else None,
            ip_address=ip,
            details={"reason": "bad_password" if user else "unknown_account"},
        )
        if user is not None and reservation.locked_account:
            await _notify_locked(conn, settings, user, ip)
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
    await repo.set_last_login(conn, user["user_id"], rehashed)
    await throttle.succeeded(conn, reservation)
    await audit.record(
        conn, "login", actor_user_id=user["user_id"], subject_id=str(user["user_id"]), ip_address=ip
    )
    return LoginOutcome(token=await sessions.issue(conn, settings, user["user_id"], user["role"]))


async def logout(conn: asyncpg.Connection, user: AuthUser, ip: str | None) -> None:
    """End every access and refresh token of the caller (all devices): the token generation moves on."""
    await repo.bump_token_version(conn, user.user_id)
    await _audit_own(conn, "logout", user, ip)


# --- The caller's account ------------------------------------------------------------------------


users = OwnedResource(repo.users, UserOut, UserNotFoundError, "No such user.")


async def get_user(conn: asyncpg.Connection, caller: AuthUser, user_id: uuid.UUID) -> UserOut:
    """An account's profile: admins may read any, anyone else only their own (404 for the rest)."""
    return await users.get(conn, caller, user_id)


async def update_me(
    conn: asyncpg.Connection, hashing: PasswordHashing, user: AuthUser, data: UserUpdate, ip: str | None
) -> UserOut:
    """Change the caller's profile; a new password needs the current one and ends every token."""
    values = changes(data, exclude=("password", "current_password"))
    if isinstance(data.password, str) and isinstance(data.current_password, str):
        current = await repo.get_password_hash(conn, user.user_id)
        if not await hashing.verify(current, data.current_password):
            raise ValidationError(
                "The current password is wrong.",
                details=[
                    {"field": "body.current_password", "message": "Does not match the account's password."}
                ],
            )
        check_password_policy(data.password, user.email)
        values["password_hash"] = await hashing.hash(data.password)
        await repo.bump_token_version(conn, user.user_id)
        await _audit_own(conn, "password_changed", user, ip)
    return users.found(await repo.users.update(conn, user.user_id, None, values))


async def erase_account(
    conn: asyncpg.Connection, user: AuthUser, ip: str | None, hooks: Sequence[UserErasedHook]
) -> dict[str, int]:
    """Erase the caller's account and everything it owns, in the caller's transaction.

    Each domain erases or unlinks the user's rows in its own tables first (``hooks``: every registered
    domain's ``on_user_erased``, e.g. ingest keeps events unlinked), then the user row goes and its
    foreign keys cascade to the rest.
    """
    counts: dict[str, int] = {}
    for hook in hooks:
        counts.update(await hook(conn, user.user_id))
    if await repo.delete_user(conn, user.user_id) != 1:
        raise UserNotFoundError("No such user.")
    await throttle.forget_account(conn, user.email)
    await _audit_own(conn, "account_erased", user, ip, counts)
    await events.emit(conn, "user.erased", {"user_id": user.user_id})
    return counts


# --- Administration ------------------------------------------------------------------------------


async def admin_update_user(
    conn: asyncpg.Connection, admin: AuthUser, user_id: uuid.UUID, data: AdminUserUpdate, ip: str | None
) -> UserOut:
    """Change an account's role, status or tier (admin); role and status changes are audited.

    Visibility before permission: a non-admin naming another account gets 404, their own 403.
    """
    if not admin.has_role("admin") and user_id != admin.user_id:
        raise UserNotFoundError("No such user.")
    require_role(admin, "admin")
    values = changes(data)
    if user_id == admin.user_id and ("role" in values or "status" in values):
        raise ConflictError(
            "Admins cannot change their own role or status; ask another admin.", code="self_change"
        )
    before = await conn.fetchrow("SELECT role, status FROM users WHERE user_id = $1 FOR UPDATE", user_id)
    if before is None:
        raise UserNotFoundError("No such user.")
    row = await repo.users.update(conn, user_id, None, values)
    if "status" in values and values["status"] != before["status"]:
        # A suspended account's tokens must not come back to life when it is reactivated.
        await repo.bump_token_version(conn, user_id)
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
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise UserNotFoundError(f"No account with email {email!r}.") from exc
    row = await conn.fetchrow("SELECT user_id, role FROM users WHERE email = $1 FOR UPDATE", email)
    if row is None:
        raise UserNotFoundError(f"No account with email {email!r}.")
    if row["role"] != role:
        await repo.users.update(conn, row["user_id"], None, {"role": role})
        await audit.record(
            conn,
            "role_changed",
            subject_id=str(row["user_id"]),
            details={"from": row["role"], "to": role, "via": via},
        )
    return row["role"], role
