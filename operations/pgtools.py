"""PostgreSQL's own programs, as the pip-installed server ships them (``pgserver``'s bin directory).

``CORP_ASTRO_PG_BIN`` points elsewhere (the binaries of a ``DATABASE_URL`` server's own major version,
which a restore needs). When this process runs as root, PostgreSQL itself runs as the ``pgserver``
user, as the embedded server does: the files it must read or write are handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from operations.errors import ToolMissing

__all__ = [
    "ServerProcess",
    "bin_dir",
    "free_port",
    "give_to_server_user",
    "run_tool",
    "server_user",
    "start_server",
    "stop_server",
    "tool",
]

# The programs the backup commands use; all are in pgserver's wheel (PostgreSQL 16).
TOOLS = ("pg_basebackup", "pg_verifybackup", "pg_waldump", "pg_ctl", "postgres")


def bin_dir() -> Path:
    """Where PostgreSQL's programs are: ``CORP_ASTRO_PG_BIN``, else the pgserver wheel's bin dir."""
    override = os.environ.get("CORP_ASTRO_PG_BIN")
    if override:
        return Path(override)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (pgserver uses /tmp)
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - pgserver is a dependency
        raise ToolMissing("pgserver is not installed and CORP_ASTRO_PG_BIN is unset") from exc
    return Path(POSTGRES_BIN_PATH)


def tool(name: str) -> Path:
    """The path of program ``name``, or ToolMissing naming what to install or set."""
    path = bin_dir() / name
    if not path.is_file():
        raise ToolMissing(
            f"{name} is not in {path.parent}: set CORP_ASTRO_PG_BIN to a PostgreSQL bin directory "
            f"that has it (for example /usr/lib/postgresql/16/bin)"
        )
    return path


def server_user() -> str | None:
    """The OS user PostgreSQL runs as when we are root (pgserver's convention), else None (us)."""
    return "pgserver" if os.name == "posix" and os.geteuid() == 0 else None


def give_to_server_user(path: Path, *, owner_of: Path | None = None) -> None:
    """Hand ``path`` (recursively) to the server's OS user when that is not us: the owner of ``owner_of``
    (a running server's data directory), else pgserver's user."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    import pwd

    if owner_of is not None:
        uid, gid = owner_of.stat().st_uid, owner_of.stat().st_gid
    else:
        entry = pwd.getpwnam(server_user() or "root")
        uid, gid = entry.pw_uid, entry.pw_gid
    if uid == 0:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (pgserver uses /tmp)
        from pgserver.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)  # chmod go+rx on the parents, as pgserver does for its data dir
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def run_tool(name: str, args: list[str], *, as_server: bool = False, timeout: float = 3600) -> str:
    """Run a PostgreSQL program; its stdout, or ToolFailed-like CalledProcessError with its stderr."""
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    done = subprocess.run(
        [str(tool(name)), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        user=server_user() if as_server else None,
        check=False,
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done.stdout


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A PostgreSQL started here on 127.0.0.1: its data directory, port, pid and log file."""

    datadir: Path
    port: int
    pid: int
    log: Path

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def alive(self) -> bool:
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True


def _postmaster_pid(datadir: Path) -> int | None:
    pidfile = datadir / "postmaster.pid"
    try:
        return int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def start_server(datadir: Path, log: Path, *, port: int | None = None, wait_s: int = 600) -> ServerProcess:
    """Start PostgreSQL on ``datadir``, listening only on 127.0.0.1 (no Unix socket); wait until it
    accepts connections or has exited. The caller checks ``alive()`` and reads ``log`` on failure."""
    port = port or free_port()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories=''"
    log.touch()
    give_to_server_user(log)
    with contextlib.suppress(subprocess.CalledProcessError):  # the log says why; the caller reports it
        run_tool(
            "pg_ctl",
            ["-D", str(datadir), "-l", str(log), "-o", opts, "-w", "-t", str(wait_s), "start"],
            as_server=True,
            timeout=wait_s + 30,
        )
    pid = _postmaster_pid(datadir) or 0
    return ServerProcess(datadir, port, pid, log)


def stop_server(server: ServerProcess, *, timeout: float = 60) -> None:
    """Stop a server started by ``start_server``, by its pid (fast shutdown, then SIGKILL if it hangs)."""
    import signal

    if not server.pid or not server.alive():
        return
    os.kill(server.pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return
        time.sleep(0.1)
    os.kill(server.pid, signal.SIGKILL)
