"""``corp-astro backup init|full|switch-wal|list|restore|verify|prune``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kernel.cli import with_database
from kernel.errors import DomainError
from kernel.settings import get_settings
from operations import catalog, jobs
from operations.catalog import BackupDir
from operations.pgtools import bin_dir
from operations.restore import Target, restore

__all__ = ["register"]

T = TypeVar("T")

_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The backup directory (default: $CORP_ASTRO_BACKUP_DIR, else <data dir>/backups).",
)


def _bdir(directory: Path | None) -> BackupDir:
    return catalog.backup_dir(get_settings().data_dir, directory)


def _run(work: Callable[[], T]) -> T:
    """Run a command body; a domain error becomes a one-paragraph CLI error (exit status 1)."""
    try:
        return work()
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


def _parse_time(raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError as exc:
        raise click.BadParameter(f"{raw!r} is not an ISO 8601 time (2026-11-30T22:15:00Z)") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@click.group("backup")
def backup_group() -> None:
    """Base backups, WAL archiving, point-in-time restore and restore checks (docs/operations.md)."""


@backup_group.command("init")
@_dir_option
def init_cmd(directory: Path | None) -> None:
    """Archive WAL into the backup directory (ALTER SYSTEM; restarts the embedded server if needed)."""
    settings, bdir = get_settings(), _bdir(directory)
    plan, facts = _run(lambda: with_database(lambda db: jobs.init(db, bdir)))
    for line in plan.lines():
        click.echo(("set     " if line.split(" =")[0] in plan.changes else "already ") + line)
    if plan.note:
        click.echo(f"note: {plan.note}")
    if plan.restart and settings.database_url is None:
        click.echo("restarting the embedded PostgreSQL (archive_mode takes effect at a restart)")
        jobs.restart_embedded(settings.data_dir / "postgres")
        _run(lambda: with_database(lambda db: jobs.check_archiving(db, bdir)))
    elif plan.restart:
        datadir = facts.settings.get("data_directory", "<its data directory>")
        raise click.ClickException(
            f"archive_mode/wal_level take effect only at a restart: restart PostgreSQL now "
            f"(pg_ctl restart -D {datadir}, or systemctl restart postgresql), then run `backup full`"
        )
    click.echo(f"WAL archiving into {bdir.wal}; PostgreSQL programs from {bin_dir()}")


@backup_group.command("full")
@_dir_option
def full_cmd(directory: Path | None) -> None:
    """Take a base backup (pg_basebackup + manifest, checked by pg_verifybackup) with its snapshot."""
    bdir = _bdir(directory)
    meta = _run(lambda: with_database(lambda db: jobs.full(db, bdir), max_size=4))
    click.echo(
        f"backup {meta['id']}: {meta['size_bytes'] / 1e6:.1f} MB in {meta['seconds']:.1f} s, "
        f"manifest verified, WAL archived through {meta['archived_through']}, "
        f"restore point {meta['restore_point']}"
    )


@backup_group.command("switch-wal")
def switch_cmd() -> None:
    """Archive the WAL written so far now (archive_timeout does it at least hourly)."""
    segment = _run(lambda: with_database(jobs.switch_wal))
    click.echo(f"archived through {segment}")


def _print_listing(data: dict[str, Any]) -> None:
    for b in data["backups"]:
        click.echo(
            f"{b['id']}  finished {b['finished_at']}  {b['size_bytes'] / 1e6:8.1f} MB  from WAL {b['start_wal']}"
        )
    if not data["backups"]:
        click.echo("no base backups")
    click.echo(
        f"WAL: {data['wal_segments']} segment(s) {data.get('wal_first', '')}..{data.get('wal_last', '')}"
    )
    for before, after in data["gaps"]:
        click.echo(f"GAP in the WAL archive between {before} and {after}")
    window = data["window"]
    click.echo(
        f"restorable window: {window['from']} .. {window['to']}" if window else "restorable window: none"
    )


@backup_group.command("list")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON.")
def list_cmd(directory: Path | None, as_json: bool) -> None:
    """Backups, WAL coverage and gaps, and the window a restore can reach."""
    from operations import service

    data = _run(lambda: service.listing(_bdir(directory)))
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _print_listing(data)


@backup_group.command("restore")
@click.option("--to", "to", required=True, help="The time to restore to (ISO 8601; UTC unless it says).")
@click.option("--target", required=True, type=click.Path(file_okay=False, path_type=Path))
@_dir_option
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the replay.")
def restore_cmd(to: str, target: Path, directory: Path | None, timeout: float) -> None:
    """Restore to a point in time into TARGET and start it read-only on a free 127.0.0.1 port; the
    last line printed is its URL."""
    when, creds = _parse_time(to), jobs.login(get_settings().database_url)
    done = _run(
        lambda: asyncio.run(
            restore(_bdir(directory), Target(time=when), target.resolve(), creds, timeout=timeout)
        )
    )
    click.echo(f"restored base backup {done.backup['id']} and replayed WAL to {when.isoformat()}")
    click.echo(f"last replayed transaction: {done.stopped_at}; {done.stop_line or ''}")
    click.echo(
        f"read-only (paused recovery), postmaster pid {done.server.pid}, log {done.server.log}; "
        f"stop it with: kill -INT {done.server.pid}"
    )
    click.echo(done.server.url(creds["user"], creds["database"]))


@backup_group.command("verify")
@_dir_option
def verify_cmd(directory: Path | None) -> None:
    """Restore the newest backup to scratch and compare every table with its snapshot; exit 1 if not."""
    bdir, creds = _bdir(directory), jobs.login(get_settings().database_url)
    result = _run(lambda: with_database(lambda db: jobs.locked_verify(db, bdir, creds)))
    click.echo(
        f"backup {result['backup_id']} verified: {result['tables']} tables match their snapshot "
        f"(restore {result['restore_seconds']:.1f} s, total {result['seconds']:.1f} s)"
    )


@backup_group.command("prune")
@click.option("--keep-days", required=True, type=click.IntRange(min=0))
@_dir_option
def prune_cmd(keep_days: int, directory: Path | None) -> None:
    """Delete base backups older than N days (never the newest) and the WAL only they needed."""
    bdir = _bdir(directory)
    gone = _run(lambda: with_database(lambda db: jobs.prune(db, bdir, keep_days)))
    click.echo(f"deleted {len(gone['backups'])} backup(s) {' '.join(gone['backups'])}")
    click.echo(f"deleted {len(gone['wal'])} WAL segment(s)")


def register(main: click.Group) -> None:
    """Attach the backup commands to the CLI."""
    main.add_command(backup_group)
