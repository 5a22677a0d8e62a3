"""``corp-astro users create-admin`` and ``users set-role``, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import asyncpg

from tests.integration.core.conftest import new_email
from tests.support import ROOT

ADMIN_PASSWORD = "a sturdy admin passphrase"


def _cli(
    database_url: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corp_astro.cli", "users", *args],
        cwd=ROOT,
        # The password variable is dropped unless given, so that the prompt is exercised otherwise.
        env={
            **{k: v for k, v in os.environ.items() if k != "CORP_ASTRO_ADMIN_PASSWORD"},
            "DATABASE_URL": database_url,
            **(env or {}),
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_create_admin_from_env_and_set_role(clean_db: str, conn: asyncpg.Connection) -> None:
    email = new_email()
    out = _cli(clean_db, "create-admin", email, env={"CORP_ASTRO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert out.returncode == 0, out.stderr
    assert ADMIN_PASSWORD not in out.stdout + out.stderr
    row = await conn.fetchrow(
        "SELECT user_id, role, status, password_hash FROM users WHERE email = $1", email
    )
    assert row["role"] == "admin"
    assert row["status"] == "active"
    assert row["password_hash"].startswith("$argon2id$")
    audit = await conn.fetchrow("SELECT * FROM audit_log WHERE action = 'role_changed'")
    assert audit["subject_id"] == str(row["user_id"])
    assert json.loads(audit["details"])["to"] == "admin"

    # The same email again (in another case) is refused; so is a weak password.
    again = _cli(clean_db, "create-admin", email.upper(), env={"CORP_ASTRO_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert again.returncode == 1
    assert "already exists" in again.stderr
    weak = _cli(clean_db, "create-admin", new_email(), env={"CORP_ASTRO_ADMIN_PASSWORD": "short"})
    assert weak.returncode == 1
    assert "policy" in weak.stderr

    demote = _cli(clean_db, "set-role", email, "analyst")
    assert demote.returncode == 0, demote.stderr
    assert await conn.fetchval("SELECT role FROM users WHERE email = $1", email) == "analyst"
    changes = await conn.fetch(
        "SELECT details FROM audit_log WHERE action = 'role_changed' ORDER BY created_at"
    )
    assert json.loads(changes[-1]["details"]) == {"from": "admin", "to": "analyst", "via": "cli"}
    missing = _cli(clean_db, "set-role", new_email(), "admin")
    assert missing.returncode == 1


async def test_create_admin_prompts_for_the_password(clean_db: str, conn: asyncpg.Connection) -> None:
    email = new_email()
    out = _cli(clean_db, "create-admin", email, stdin=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n")
    assert out.returncode == 0, out.stderr
    assert ADMIN_PASSWORD not in out.stdout  # the prompt hides the input
    assert await conn.fetchval("SELECT role FROM users WHERE email = $1", email) == "admin"
