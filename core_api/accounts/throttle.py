"""Attempt throttles with exponential backoff for login and registration (OWASP's credential-stuffing
guidance), counted in PostgreSQL so that every app process shares them.

A login is counted against three keys, always in this order (a fixed lock order, so concurrent
attempts cannot deadlock):

- the account from every address (``acct:``): a high limit; reaching it locks the account for a while
  and notifies its owner;
- the account from this address (``acct-ip:``): a low limit, so a guesser is slowed at once, while the
  owner's correct password from another address is not blocked by the guesser's failures;
- this address, for any account (``ip:``).

Registration is counted per address (``reg-ip:``) and in all (``reg:``). Keys hold SHA-256 digests of
normalised emails, never an email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from dataclasses import dataclass

import asyncpg

from core_api.accounts import repository as repo
from core_api.accounts.errors import LoginRateLimitedError, RegistrationRateLimitedError
from kernel.auth import utcnow
from kernel.settings import AuthLimits

__all__ = ["Limit", "Reservation", "login_limits", "register_limits", "reserve"]

_log = logging.getLogger("corp_astro.accounts.throttle")


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter: ``attempts`` free attempts per window, then backoff from ``backoff`` seconds."""

    key: str
    attempts: int
    backoff: int
    backoff_max: int
    window: int

    @property
    def scope(self) -> str:
        """The kind of key, for logs (never the key itself)."""
        return self.key.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Reservation:
    """The keys an allowed attempt was counted against, and whether it started an account lock."""

    limits: tuple[Limit, ...]
    locked_account: bool = False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def account_key(email: str) -> str:
    """The account-wide key of a normalised email."""
    return f"acct:{_digest(email)}"


def login_limits(limits: AuthLimits, email: str, ip: str | None) -> tuple[Limit, ...]:
    """The keys a login for ``email`` (normalised) from ``ip`` is counted against, in lock order."""
    backoff = (limits.backoff_seconds, limits.backoff_max_seconds, limits.window_seconds)
    lock = limits.account_lock_seconds
    keys = [
        Limit(account_key(email), limits.account_lock_attempts, lock, lock, limits.window_seconds),
        Limit("acct-ip:" + _digest(f"{email}|{ip or '-'}"), limits.account_ip_attempts, *backoff),
    ]
    if ip:
        keys.append(Limit(f"ip:{ip[:60]}", limits.ip_attempts, *backoff))
    return tuple(keys)


def register_limits(limits: AuthLimits, ip: str | None) -> tuple[Limit, ...]:
    """The keys a registration from ``ip`` is counted against, in lock order."""
    backoff = (limits.backoff_seconds, limits.backoff_max_seconds, limits.window_seconds)
    keys = [Limit("reg:all", limits.register_global_attempts, *backoff)]
    if ip:
        keys.append(Limit(f"reg-ip:{ip[:60]}", limits.register_ip_attempts, *backoff))
    return tuple(keys)


def _backoff(limit: Limit, attempts: int) -> dt.timedelta:
    # The attempt that reaches the limit starts the first backoff; each further one doubles it.
    exponent = min(attempts - limit.attempts, 30)
    return dt.timedelta(seconds=min(limit.backoff_max, limit.backoff * 2**exponent))


async def reserve(
    conn: asyncpg.Connection, limits: tuple[Limit, ...], *, registration: bool = False
) -> Reservation:
    """Count one attempt against every key before any password work, or refuse it (429).

    Counting first, under each key's row lock, means a burst of parallel attempts cannot slip past a
    limit before the first result is known: the attempt that reaches a limit starts the backoff that
    refuses the next one. A refused attempt raises, the caller's transaction rolls back, and nothing
    is counted for it.
    """
    now = utcnow()
    locked_account = False
    for limit in limits:
        attempts, blocked_until = await repo.lock_throttle(
            conn, limit.key, now, dt.timedelta(seconds=limit.window)
        )
        if blocked_until is not None and blocked_until > now:
            retry_after = max(1, math.ceil((blocked_until - now).total_seconds()))
            _log.warning("attempt throttled", extra={"scope": limit.scope, "retry_after": retry_after})
            error = RegistrationRateLimitedError if registration else LoginRateLimitedError
            raise error(
                "Too many attempts; try again later."
                if registration
                else "Too many failed logins; try again later.",
                retry_after=retry_after,
            )
        attempts += 1
        block = now + _backoff(limit, attempts) if attempts >= limit.attempts else None
        if block is not None and limit.scope == "acct" and not registration:
            locked_account = True
        await repo.count_attempt(conn, limit.key, attempts, block)
    return Reservation(limits, locked_account)


async def succeeded(conn: asyncpg.Connection, reservation: Reservation) -> None:
    """A correct password: forget this account's failures from this address, un-count the rest."""
    for limit in reservation.limits:
        if limit.scope == "acct-ip":
            await repo.clear_throttle(conn, limit.key)
        else:
            await repo.release_throttle(conn, limit.key)


async def forget_account(conn: asyncpg.Connection, email: str) -> None:
    """Drop the account-wide counter of ``email`` (normalised), e.g. when the account is erased."""
    await repo.clear_throttle(conn, account_key(email))
