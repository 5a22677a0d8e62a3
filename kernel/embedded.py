"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

pgserver ships PostgreSQL binaries in a wheel. It listens only on a Unix socket (never on a network
address), reference-counts the processes that use one data directory with a file lock, and stops the
server cleanly when the last of them exits, so ``make run`` and a CLI command side by side share one
server without corrupting it.
"""

from __future__ import annotations

import atexit
import json
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DATABASE", "embedded_server", "embedded_url"]

DEFAULT_DATABASE = "corp_astro"
_log = logging.getLogger(__name__)
_servers: dict[Path, Any] = {}


def _prune_dead_users(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL, a crash).

    pgserver stops the server when the last process in ``.handle_pids.json`` exits; a dead pid left in
    that list would keep the server running forever. Runs under pgserver's own inter-process lock.
    """
    import psutil
    from pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if handles.exists():
            pids = json.loads(handles.read_text() or "[]")
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                handles.write_text(json.dumps(alive))


# Settings of the embedded server, which ingest writes to heavily (docs/ingest.md, "PostgreSQL settings").
# With the default max_wal_size (1 GB) a sustained load of ~20,000 events/s checkpoints every ~10 s, and
# after each checkpoint the first change to every page writes the whole page to the WAL again: several
# times the WAL and markedly more CPU per event. Autovacuum's pass over freshly inserted event pages
# (setting them all-visible) rewrites them at ~40 MB/s with the default 2 ms cost delay, and the flushes'
# commits wait on the disk behind it (p99 at 80 % of the peak 200-330 ms in those seconds); at 10 ms it
# writes a fifth as fast, still ~7 MB/s of heap (about 10,000 events/s sustained). A flush sets
# backend_flush_after for its own transaction; set for every backend it also covers autovacuum's writes,
# which otherwise sat dirty in the page cache and reached the disk in bursts that commits waited behind
# (p99 within 100 ms at 80 % of the peak in 4 and 4 of 5 runs, against 3 and 3 without). All are
# reloadable, so a running server takes them.
_SETTINGS = {
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "autovacuum_vacuum_cost_delay": "10ms",
    "backend_flush_after": "256kB",
}


def _tune(server: Any, pgdata: Path) -> None:
    """Persist ``_SETTINGS`` (ALTER SYSTEM) and reload, unless the data directory already has them."""
    auto = pgdata / "postgresql.auto.conf"
    have = auto.read_text() if auto.exists() else ""
    missing = {k: v for k, v in _SETTINGS.items() if f"{k} = '{v}'" not in have}
    if not missing:
        return
    for name, value in missing.items():  # one statement per call: ALTER SYSTEM refuses a transaction
        server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
    server.psql("SELECT pg_reload_conf();")


def embedded_server(pgdata: Path) -> Any:
    """Start (or join) the embedded server whose data lives in ``pgdata``."""
    pgdata = pgdata.resolve()
    if pgdata not in _servers:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, which is fine.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server  # lazy: DATABASE_URL users never pay for it

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _prune_dead_users(pgdata)
            _servers[pgdata] = get_server(pgdata, cleanup_mode="stop")
            _tune(_servers[pgdata], pgdata)
            # Registered after pgserver's own exit hook, so it runs first (atexit is LIFO): the last live
            # user then really is the last one in the list and stops the server.
            atexit.register(_prune_dead_users, pgdata)
        _log.info("embedded postgres ready", extra={"pgdata": str(pgdata)})
    return _servers[pgdata]


def embedded_url(pgdata: Path, database: str = DEFAULT_DATABASE) -> str:
    """Return a URL for ``database`` on the embedded server, creating the database if needed."""
    server = embedded_server(pgdata)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        try:
            server.psql(f'CREATE DATABASE "{database}";')
        except subprocess.CalledProcessError:
            # Another process created it between our check and our CREATE.
            if "(1 row)" not in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';"):
                raise
    return str(server.get_uri(database))
