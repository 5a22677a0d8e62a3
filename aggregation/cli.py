"""``corp-astro aggregate`` (backfill), ``corp-astro export events``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kernel.cli import with_database
from kernel.db import Database, resolve_database_url
from kernel.settings import get_settings

__all__ = ["register"]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )


def _check_range(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    return start.date(), end.date()


@click.command("aggregate")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First UTC day.")
@click.option(
    "--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (inclusive)."
)
@click.option(
    "--job",
    type=click.Choice(["all", "hourly", "daily", "active_users", "conversions"]),
    default="all",
    show_default=True,
    help="all = daily (hourly + daily rollups, active users) then conversions.",
)
def aggregate(date_from: dt.datetime, date_to: dt.datetime, job: str) -> None:
    """Recompute rollups for every day in a range, whatever the ledger says (finalised days are skipped)."""
    from aggregation.jobs import PeriodResult, aggregate_range

    start, end = _check_range(date_from, date_to)
    jobs = ("daily", "conversions") if job == "all" else (job,)
    days = (end - start).days + 1
    total = sum(days * (24 if j == "hourly" else 1) for j in jobs)
    counts: dict[str, int] = {}

    async def go(db: Database) -> None:
        with _progress() as progress:
            task = progress.add_task("aggregate", total=total, note="")

            def step(r: PeriodResult) -> None:
                counts[r.status] = counts.get(r.status, 0) + 1
                progress.update(task, advance=1, note=f"{r.job} {r.period:%Y-%m-%d %H:%M} {r.status}")

            await aggregate_range(db, start, end, jobs, on_period=step)

    with_database(go)
    click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if counts.get("failed"):
        raise SystemExit(1)


@click.group("export")
def export() -> None:
    """Exports of raw data."""


@export.command("events")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First UTC day.")
@click.option(
    "--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (inclusive)."
)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset root."
)
def export_events(date_from: dt.datetime, date_to: dt.datetime, out: Path) -> None:
    """Write OUT/event_date=YYYY-MM-DD/*.parquet (zstd, UTC microseconds); re-running replaces days."""
    from aggregation.exports import write_dataset
    from aggregation.memory import configure_allocators

    configure_allocators()  # before the export's reads load Polars (through the ADBC driver)
    start, end = _check_range(date_from, date_to)
    url = resolve_database_url(get_settings())
    with _progress() as progress:
        task = progress.add_task("export", total=(end - start).days + 1, note="")
        stats = write_dataset(
            url, start, end, out, lambda day, n: progress.update(task, advance=1, note=f"{day} {n} events")
        )
    click.echo(f"{stats.rows} events in {stats.files} files ({stats.bytes} bytes) under {out}")


def register(main: click.Group) -> None:
    """Attach the aggregation commands to the ``corp-astro`` CLI."""
    main.add_command(aggregate)
    main.add_command(export)
