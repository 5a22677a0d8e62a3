"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

pgserver ships PostgreSQL binaries in a wheel. It listens only on a Unix socket (never on a network
address), reference-counts the processes that use one data directory with a file lock, and stops the
server cleanly when the last of them exits, so ``make run`` and a CLI command side by side share one
server without corrupting it.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DATABASE", "embedded_server", "embedded_url"]

DEFAULT_DATABASE = "corp_astro"
_log = logging.getLogger(__name__)
_servers: dict[Path, Any] = {}


def embedded_server(pgdata: Path) -> Any:
    """Start (or join) the embedded server whose data lives in ``pgdata``."""
    pgdata = pgdata.resolve()
    if pgdata not in _servers:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, which is fine.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server  # lazy: DATABASE_URL users never pay for it

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _servers[pgdata] = get_server(pgdata, cleanup_mode="stop")
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
