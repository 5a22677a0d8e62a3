"""SQL of the accounts domain: users, preferences, devices, subscriptions and the login throttle."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from core_api.accounts.models import Subscription, User, UserDevice, UserPreference
from kernel.owned import OwnedTable
from kernel.resources import columns, row_count

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PREFERENCE_COLUMNS",
    "USER_COLUMNS",
    "bump_token_version",
    "count_attempt",
    "delete_user",
    "devices",
    "email_taken",
    "get_preferences",
    "get_user_by_email",
    "insert_preferences",
    "insert_refresh_token",
    "lock_refresh_token",
    "lock_throttle",
    "mark_refresh_used",
    "purge_throttle",
    "release_throttle",
    "revoke_refresh_family",
    "set_last_login",
    "subscriptions",
    "token_version",
    "update_device",
    "upsert_device",
    "upsert_preferences",
    "users",
]

# A user row is "owned" by itself: get, list and update by id come from the generic table. The password
# hash is never part of a profile.
users = OwnedTable(User.__table__, owner="user_id", exclude=("password_hash",))
devices = OwnedTable(UserDevice.__table__)
subscriptions = OwnedTable(Subscription.__table__)
USER_COLUMNS = users.columns
PREFERENCE_COLUMNS = columns(UserPreference.__table__)
_NOW = "(now() AT TIME ZONE 'UTC')"

Row = Any  # asyncpg.Record


# --- Users ---------------------------------------------------------------------------------------


async def get_user_by_email(conn: asyncpg.Connection, email: str) -> Row | None:
    """The user with this normalised email (``accounts.emails``), with its password hash."""
    return await conn.fetchrow(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1", email)


async def email_taken(conn: asyncpg.Connection, email: str) -> bool:
    """Whether an account has this normalised email."""
    taken: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)", email)
    return taken


async def bump_token_version(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """End every access and refresh token issued to ``user_id`` so far."""
    await conn.execute(
        f"""INSERT INTO user_token_versions AS v (user_id, token_version) VALUES ($1, 1)
            ON CONFLICT (user_id) DO UPDATE SET token_version = v.token_version + 1, updated_at = {_NOW}""",
        user_id,
    )
    await conn.execute(
        f"UPDATE refresh_tokens SET revoked_at = {_NOW} WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )


async def insert_refresh_token(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: bytes,
    version: int,
    expires_at: dt.datetime,
) -> None:
    """Store a new refresh token (its hash only)."""
    await conn.execute(
        """INSERT INTO refresh_tokens (user_id, family_id, token_hash, token_version, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        user_id,
        family_id,
        token_hash,
        version,
        expires_at,
    )


async def lock_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> Row | None:
    """The refresh token with this hash, row-locked, with its account's role, status and current token
    generation; None if unknown. Concurrent refreshes of one token queue here, so only one can use it."""
    return await conn.fetchrow(
        """SELECT t.token_id, t.user_id, t.family_id, t.token_version, t.expires_at, t.used_at,
                  t.revoked_at, u.role, u.status, coalesce(v.token_version, 0) AS current_version
           FROM refresh_tokens t
           JOIN users u ON u.user_id = t.user_id
           LEFT JOIN user_token_versions v ON v.user_id = t.user_id
           WHERE t.token_hash = $1
           FOR UPDATE OF t""",
        token_hash,
    )


async def mark_refresh_used(conn: asyncpg.Connection, token_id: uuid.UUID) -> None:
    """A refresh token has been exchanged; presenting it again is reuse."""
    await conn.execute(f"UPDATE refresh_tokens SET used_at = {_NOW} WHERE token_id = $1", token_id)


async def revoke_refresh_family(conn: asyncpg.Connection, family_id: uuid.UUID) -> int:
    """Revoke every token of one login's family; how many were still live."""
    status = await conn.execute(
        f"UPDATE refresh_tokens SET revoked_at = {_NOW} WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def token_version(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """The current token generation of ``user_id`` (0 before any bump)."""
    version: int | None = await conn.fetchval(
        "SELECT token_version FROM user_token_versions WHERE user_id = $1", user_id
    )
    return version or 0


async def get_password_hash(conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
    """The stored argon2 hash of a user."""
    value: str | None = await conn.fetchval("SELECT password_hash FROM users WHERE user_id = $1", user_id)
    return value


async def set_last_login(conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str | None) -> None:
    """Stamp ``last_login_at`` (and store an upgraded password hash when one is given)."""
    await conn.execute(
        f"""UPDATE users SET last_login_at = {_NOW},
               password_hash = COALESCE($2, password_hash) WHERE user_id = $1""",
        user_id,
        password_hash,
    )


async def delete_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Delete a user; ``ON DELETE CASCADE`` removes devices, subscriptions, preferences, token generations
    and, in the other core domains, businesses and their analyses, reports and their sections, and the
    notification inbox. The number deleted (0 or 1)."""
    return row_count(await conn.execute("DELETE FROM users WHERE user_id = $1", user_id))


# --- Preferences ---------------------------------------------------------------------------------


async def get_preferences(conn: asyncpg.Connection, user_id: uuid.UUID) -> Row | None:
    """The user's preferences row, if saved."""
    return await conn.fetchrow(
        f"SELECT {PREFERENCE_COLUMNS} FROM user_preferences WHERE user_id = $1", user_id
    )


async def insert_preferences(conn: asyncpg.Connection, preference_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Create the default preferences row of a new user."""
    await conn.execute(
        "INSERT INTO user_preferences (preference_id, user_id) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        preference_id,
        user_id,
    )


async def upsert_preferences(
    conn: asyncpg.Connection, preference_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> Row:
    """Store the given preference fields, creating the row with defaults for the others if needed."""
    cols = list(values)
    insert_cols = ", ".join(["preference_id", "user_id", *cols])
    params = ", ".join(f"${i}" for i in range(1, len(cols) + 3))
    updates = ", ".join([*(f"{c} = EXCLUDED.{c}" for c in cols), f"updated_at = {_NOW}"])
    return await conn.fetchrow(
        f"""INSERT INTO user_preferences ({insert_cols}) VALUES ({params})
            ON CONFLICT (user_id) DO UPDATE SET {updates} RETURNING {PREFERENCE_COLUMNS}""",
        preference_id,
        user_id,
        *values.values(),
    )


# --- Devices: the generic table, plus the push-token rule ----------------------------------------


async def upsert_device(
    conn: asyncpg.Connection, device_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> tuple[Row, bool]:
    """Register a push token for a user, or refresh the existing registration; (row, created)."""
    row = await conn.fetchrow(
        f"""INSERT INTO user_devices (device_id, user_id, device_token, platform, device_model, os_version,
                                      app_version, active, last_used_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, true, {_NOW})
            ON CONFLICT (user_id, device_token) DO UPDATE SET
                platform = EXCLUDED.platform, device_model = EXCLUDED.device_model,
                os_version = EXCLUDED.os_version, app_version = EXCLUDED.app_version,
                active = true, last_used_at = EXCLUDED.last_used_at, updated_at = {_NOW}
            RETURNING {devices.columns}, (xmax = 0) AS created""",
        device_id,
        user_id,
        values["device_token"],
        values["platform"],
        values.get("device_model"),
        values.get("os_version"),
        values.get("app_version"),
    )
    await _release_token_elsewhere(conn, values["device_token"], user_id)
    record = dict(row)
    created = bool(record.pop("created"))
    return record, created


async def _release_token_elsewhere(conn: asyncpg.Connection, token: str, user_id: uuid.UUID) -> None:
    # A token moves with the app install: another account that held it must stop receiving its pushes.
    await conn.execute(
        f"""UPDATE user_devices SET active = false, updated_at = {_NOW}
            WHERE device_token = $1 AND user_id <> $2 AND active""",
        token,
        user_id,
    )


async def update_device(
    conn: asyncpg.Connection, device_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]
) -> Row | None:
    """Apply ``values`` to the user's device."""
    row = await devices.update(conn, device_id, user_id, values)
    # Registering and re-pointing a device follow one rule: an active token belongs to one account.
    if values and row is not None and row["active"] and ("device_token" in values or values.get("active")):
        await _release_token_elsewhere(conn, row["device_token"], user_id)
    return row


# --- Login throttle ------------------------------------------------------------------------------


async def lock_throttle(
    conn: asyncpg.Connection, key: str, now: dt.datetime, window: dt.timedelta
) -> tuple[int, dt.datetime | None]:
    """Lock ``key``'s counter row (creating it) for this transaction; (attempts, blocked_until).

    A counter whose window has passed, with no backoff running, starts again from zero. One atomic
    upsert, so concurrent attempts in any number of processes queue on the row lock.
    """
    row = await conn.fetchrow(
        """INSERT INTO login_throttle AS t (throttle_key, window_start, attempts) VALUES ($1, $2, 0)
           ON CONFLICT (throttle_key) DO UPDATE SET
               attempts = CASE WHEN t.window_start <= $2 - $3::interval
                                AND (t.blocked_until IS NULL OR t.blocked_until <= $2)
                               THEN 0 ELSE t.attempts END,
               window_start = CASE WHEN t.window_start <= $2 - $3::interval
                                    AND (t.blocked_until IS NULL OR t.blocked_until <= $2)
                                   THEN $2 ELSE t.window_start END
           RETURNING attempts, blocked_until""",
        key,
        now,
        window,
    )
    return row["attempts"], row["blocked_until"]


async def count_attempt(
    conn: asyncpg.Connection, key: str, attempts: int, blocked_until: dt.datetime | None
) -> None:
    """Store a locked counter's new count and backoff (``None`` leaves the current, expired one)."""
    await conn.execute(
        """UPDATE login_throttle SET attempts = $2, blocked_until = COALESCE($3, blocked_until)
           WHERE throttle_key = $1""",
        key,
        attempts,
        blocked_until,
    )


async def release_throttle(conn: asyncpg.Connection, key: str) -> None:
    """Un-count one attempt (it succeeded) and end any backoff it started."""
    await conn.execute(
        """UPDATE login_throttle SET attempts = greatest(attempts - 1, 0), blocked_until = NULL
           WHERE throttle_key = $1""",
        key,
    )


async def clear_throttle(conn: asyncpg.Connection, key: str) -> None:
    """Forget every attempt counted against ``key``."""
    await conn.execute("DELETE FROM login_throttle WHERE throttle_key = $1", key)


async def purge_throttle(conn: asyncpg.Connection, before: dt.datetime, now: dt.datetime) -> int:
    """Delete counters whose window started before ``before`` and whose backoff is over."""
    return row_count(
        await conn.execute(
            """DELETE FROM login_throttle
               WHERE window_start < $1 AND (blocked_until IS NULL OR blocked_until <= $2)""",
            before,
            now,
        )
    )


async def auth_row(conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID) -> Row | None:
    """What authenticating a request needs of an account, in one query: role, status, email and the
    token generation (the kernel's ``AccountLookup``)."""
    return await conn.fetchrow(
        """SELECT u.user_id, u.role, u.email, u.status, coalesce(v.token_version, 0) AS version
           FROM users u LEFT JOIN user_token_versions v ON v.user_id = u.user_id WHERE u.user_id = $1""",
        user_id,
    )
