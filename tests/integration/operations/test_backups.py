"""Backups end to end on a private embedded PostgreSQL (archiving needs restarts, so never the shared one).

The commands run as an operator runs them (``corp-astro backup ...`` in a subprocess, docs/operations.md);
the data arrives through the real HTTP ingest and assignment paths and the real rollup job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

import aggregation
from kernel import migrate
from kernel.app import create_app
from kernel.db import Database
from kernel.embedded import embedded_url
from tests.conftest import make_settings
from tests.integration.experiments.conftest import basic, bearer, create, make_user, make_write_key

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Cluster:
    """A private embedded server under ``data_dir`` and the environment its CLI commands run with."""

    data_dir: Path
    url: str
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corp_astro.cli", "backup", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _stop_postmaster(datadir: Path) -> None:
    """Stop the PostgreSQL running on ``datadir`` by its pid (fast shutdown)."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("ops") / "data"
    url = embedded_url(data_dir / "postgres")  # this process holds the server up between commands
    migrate.upgrade(url, "heads")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CORP_ASTRO_BACKUP_DIR"}}
    env.update(CORP_ASTRO_DATA_DIR=str(data_dir), CORP_ASTRO_LOG_LEVEL="WARNING", CORP_ASTRO_SCHEDULER="0")
    c = Cluster(data_dir, url, env)
    try:
        c.ok("init")
        yield c
    finally:
        _stop_postmaster(data_dir / "postgres")


def _events(users: list[uuid.UUID], tag: str, per_user: int) -> list[dict[str, object]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    return [
        {
            "type": "track",
            "event": f"batch {tag}",
            "userId": str(u),
            "messageId": f"{tag}-{u}-{i}",
            "timestamp": now,
            "properties": {"batch": tag, "n": i},
        }
        for u in users
        for i in range(per_user)
    ]


async def _ingest(
    client: AsyncTestClient,  # type: ignore[type-arg]
    db: Database,
    users: list[uuid.UUID],
    tag: str,
    app: dict[str, str],
) -> None:
    """Send a batch for ``users`` through POST /v1/batch, assign each to the experiment, roll up today."""
    r = await client.post("/v1/batch", json={"batch": _events(users, tag, 3)}, headers=app)
    assert r.status_code == 200, r.text
    for u in users:
        r = await client.post("/v1/experiments/checkout/assignments", json={"user_id": str(u)}, headers=app)
        assert r.status_code == 200, r.text
    await aggregation.rollup_day(db, dt.datetime.now(dt.UTC).date())


async def _counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "events": await conn.fetchval("SELECT count(*) FROM analytics_events"),
            "events_a": await conn.fetchval(
                "SELECT count(*) FROM analytics_events WHERE event_name = 'batch A'"
            ),
            "events_b": await conn.fetchval(
                "SELECT count(*) FROM analytics_events WHERE event_name = 'batch B'"
            ),
            "properties": await conn.fetchval("SELECT count(*) FROM event_properties"),
            "assignments": await conn.fetchval("SELECT count(*) FROM ab_test_assignments"),
            "rolled_up": await conn.fetchval("SELECT coalesce(sum(events), 0) FROM event_rollups_daily"),
            "rolled_up_b": await conn.fetchval(
                "SELECT coalesce(sum(events), 0) FROM event_rollups_daily WHERE event_name = 'batch B'"
            ),
        }
    finally:
        await conn.close()


async def _read_only(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE written_after_restore (x int)")
    except asyncpg.ReadOnlySQLTransactionError:
        return True
    finally:
        await conn.close()
    return False


async def test_point_in_time_restore_has_batch_a_and_not_b(cluster: Cluster, tmp_path: Path) -> None:
    settings = make_settings(cluster.url, tmp_path)
    db = Database(cluster.url, max_size=4)
    await db.open()
    app = create_app(settings, ("core_api.accounts", "ingest", "experiments"))
    try:
        async with AsyncTestClient(app=app) as client:
            conn = await asyncpg.connect(cluster.url)
            try:
                admin = await make_user(conn, "admin")
                users_a = [await make_user(conn) for _ in range(8)]
                users_b = [await make_user(conn) for _ in range(5)]
                key = await make_write_key(conn)
            finally:
                await conn.close()
            await create(client, bearer(settings, admin, "admin"))
            started = time.monotonic()
            print(cluster.ok("full"))
            full_s = time.monotonic() - started
            await _ingest(client, db, users_a, "A", basic(key))
            noted = dt.datetime.now(dt.UTC)
            await asyncio.sleep(0.2)
            await _ingest(client, db, users_b, "B", basic(key))
    finally:
        await db.close()
    before = await _counts(cluster.url)
    assert before["events_b"] == 15
    assert before["assignments"] == 13
    cluster.ok("switch-wal")
    print(cluster.ok("list"))

    target = tmp_path / "restored"
    started = time.monotonic()
    out = cluster.ok("restore", "--to", noted.isoformat(), "--target", str(target))
    restore_s = time.monotonic() - started
    print(out, f"full {full_s:.1f} s, restore {restore_s:.1f} s")
    try:
        url = out.strip().splitlines()[-1]
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        after = await _counts(url)
        assert after == {
            "events": 24,
            "events_a": 24,
            "events_b": 0,
            "properties": 48,  # two properties per event
            "assignments": 8,
            "rolled_up": 24,  # the rollup run after batch A, not the one after B
            "rolled_up_b": 0,
        }
        assert await _read_only(url)
    finally:
        _stop_postmaster(target)

    late = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    done = cluster.cli("restore", "--to", late, "--target", str(tmp_path / "too-late"))
    assert done.returncode == 1
    assert "is past the end of the archived WAL" in done.stderr, done.stderr
    assert not (tmp_path / "too-late").exists()


def _flip_bytes(backup: Path) -> Path:
    """Corrupt the largest relation file of the backup's application database, as a bad disk would."""
    files = [p for p in (backup / "data" / "base").rglob("*") if p.is_file() and p.name.isdigit()]
    victim = max(files, key=lambda p: p.stat().st_size)
    with victim.open("r+b") as f:
        f.seek(victim.stat().st_size // 2)
        chunk = f.read(16)
        f.seek(-len(chunk), os.SEEK_CUR)
        f.write(bytes(b ^ 0xFF for b in chunk))
    return victim


def test_verify_passes_then_catches_a_corrupted_backup(cluster: Cluster) -> None:
    import json

    bdir = cluster.data_dir / "backups"
    if not any((bdir / "base").glob("*/backup.json")):  # run on its own, without the restore test
        cluster.ok("full")
    started = time.monotonic()
    print(cluster.ok("verify"), f"verify {time.monotonic() - started:.1f} s")
    newest = sorted((bdir / "base").iterdir())[-1]

    # A snapshot that disagrees with what the backup restores to is caught table by table.
    snap_path = newest / "snapshot.json"
    original = snap_path.read_text()
    snap = json.loads(original)
    snap["tables"]["users"]["rows"] += 1
    snap_path.write_text(json.dumps(snap))
    done = cluster.cli("verify")
    assert done.returncode == 1
    assert "differs from its snapshot in: users" in done.stderr, done.stderr
    snap_path.write_text(original)

    victim = _flip_bytes(newest)
    done = cluster.cli("verify")
    assert done.returncode == 1, done.stdout
    assert "pg_verifybackup found" in done.stderr, done.stderr
    assert "checksum mismatch" in done.stderr, done.stderr
    latest = json.loads((bdir / "verify" / "latest.json").read_text())
    assert latest["ok"] is False
    assert victim.name in latest["error"]


async def test_init_tells_a_non_superuser_what_to_set(database_url: str, tmp_path: Path) -> None:
    """On a DATABASE_URL server where the role may not ALTER SYSTEM, init changes nothing and prints the
    settings to put in postgresql.conf and the restart they need."""
    role = f"backup_probe_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        head, _, tail = database_url.partition("?")
        scheme, _, rest = head.partition("://")
        url = f"{scheme}://{role}@{rest.rpartition('@')[2]}" + (f"?{tail}" if tail else "")
        env = {k: v for k, v in os.environ.items() if k != "CORP_ASTRO_BACKUP_DIR"}
        env.update(DATABASE_URL=url, CORP_ASTRO_DATA_DIR=str(tmp_path), CORP_ASTRO_LOG_LEVEL="WARNING")
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "corp_astro.cli", "backup", "init"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        archive_mode = await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'archive_mode'")
    finally:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
    assert done.returncode == 1, done.stdout
    assert f"role {role} is not a superuser, so it cannot ALTER SYSTEM" in done.stderr
    assert "archive_mode = 'on'" in done.stderr
    assert "archive_command = 'if test -f" in done.stderr
    assert "restart" in done.stderr
    assert archive_mode == "off"  # nothing was changed
