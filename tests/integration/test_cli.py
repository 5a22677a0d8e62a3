"""The corp-astro CLI and a real served process."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from sqlalchemy.engine import make_url

from tests.support import ROOT, LiveServer


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corp_astro.cli", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_url_and_current(database_url: str) -> None:
    out = _cli("db", "url", database_url=database_url)
    assert out.returncode == 0, out.stderr
    shown, used = make_url(out.stdout.strip()), make_url(database_url)
    # The same database, with any password masked.
    assert (shown.host, shown.port, shown.database, shown.username, dict(shown.query)) == (
        used.host, used.port, used.database, used.username, dict(used.query)
    )  # fmt: skip
    assert used.password is None or shown.password == "***"
    secret = _cli(
        "db", "url", database_url=str(used.set(password="s3cret-pw").render_as_string(hide_password=False))
    )
    assert secret.returncode == 0, secret.stderr
    assert "s3cret-pw" not in secret.stdout + secret.stderr
    assert ":***@" in secret.stdout
    cur = _cli("db", "current", database_url=database_url)
    assert cur.returncode == 0, cur.stderr
    assert "(head)" in cur.stdout


def test_served_process_is_ready(clean_db: str) -> None:
    with LiveServer(clean_db) as server:
        r = httpx.get(server.base_url + "/ready", timeout=5)
        assert r.status_code == 200
        assert r.json()["status"] == "ready"
