"""``corp-astro experiments ...``: reads in one transaction, formatting in ``experiments.report``."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from experiments.definitions import Experiment
    from experiments.schemas import ResultsOut
    from kernel.db import Database

__all__ = ["register"]


def _load(name: str, alpha: float, mde: float, power: float) -> tuple[ResultsOut, Experiment]:
    from experiments import service
    from kernel.cli import with_database
    from kernel.errors import DomainError

    async def work(db: Database) -> tuple[ResultsOut, Experiment]:
        async with db.transaction() as conn:
            res = await service.results(conn, name, alpha=alpha, mde=mde, power=power)
            return res, await service.get_experiment(conn, name)

    try:
        return with_database(work, max_size=1)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


def register(main: click.Group) -> None:
    """Attach the experiments commands to the ``corp-astro`` CLI."""

    @main.group("experiments")
    def experiments() -> None:
        """A/B experiments."""

    @experiments.command("results")
    @click.argument("name")
    @click.option("--alpha", default=0.05, show_default=True, type=float)
    @click.option(
        "--mde", default=0.05, show_default=True, type=float, help="Target relative lift for sizing."
    )
    @click.option("--power", default=0.8, show_default=True, type=float)
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="table: fits the terminal (COLUMNS); json: the API's results body; csv: one row per variant.",
    )
    def results(name: str, alpha: float, mde: float, power: float, fmt: str) -> None:
        """Print the results of experiment NAME: lifts, intervals, Holm p-values, SRM and a verdict."""
        from experiments import report

        res, exp = _load(name, alpha, mde, power)
        if fmt == "json":
            from litestar.serialization import encode_json

            click.echo(encode_json(res).decode())
        elif fmt == "csv":
            click.echo(report.render_csv(res), nl=False)
        else:
            today = dt.datetime.now(dt.UTC).date()
            schedule = report.Schedule(exp.start_date, exp.end_date, today)
            width = shutil.get_terminal_size((80, 24)).columns
            click.echo(report.render_table(res, schedule, width), nl=False)

    @experiments.command("rollup-daily")
    @click.option(
        "--days",
        default=31,
        show_default=True,
        type=click.IntRange(1, 10_000),
        help="At most this many days computed.",
    )
    def rollup_daily(days: int) -> None:
        """Compute and store the daily series' missing or stale closed days now (what the scheduled job
        ``experiments.daily_results`` does every 10 minutes), with no time limit."""
        from experiments.jobs import run_daily_results
        from experiments.service.daily_cache import Budget
        from kernel.cli import with_database

        n = with_database(lambda db: run_daily_results(db, Budget(days, float("inf"))))
        click.echo(f"{n} day(s) computed")
