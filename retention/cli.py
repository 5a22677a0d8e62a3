"""``corp-astro retention plan|run|upkeep``."""

from __future__ import annotations

import datetime as dt

import click

from kernel.cli import with_database
from kernel.settings import get_settings
from retention import jobs
from retention.errors import RetentionBusy
from retention.schemas import Action

__all__ = ["register"]


def _print(actions: list[Action], empty: str) -> None:
    if not actions:
        click.echo(empty)
    for action in actions:
        click.echo(action.line())


_now_option = click.option(
    "--now",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Pretend today is DATE (UTC); the clock the policy uses.",
)


def _today(now: dt.datetime | None) -> dt.date:
    return now.date() if now else dt.datetime.now(dt.UTC).date()


@click.group("retention")
def retention_group() -> None:
    """The retention policy: aggregate after 12 months, drop raw after 24, purge logs after 6."""


@retention_group.command("plan")
@_now_option
def plan_cmd(now: dt.datetime | None) -> None:
    """Print what a run would finalise, drop and purge, with row counts and reasons. Changes nothing."""
    policy = get_settings().retention
    actions = with_database(lambda db: jobs.plan(db, _today(now), policy), max_size=4)
    _print(actions, "Nothing to do.")


@retention_group.command("run")
@_now_option
@click.option("--upkeep-only", is_flag=True, help="Only premake partitions and drain the default partitions.")
def run_cmd(now: dt.datetime | None, upkeep_only: bool) -> None:
    """Apply the policy; every action is recorded in retention_actions. Safe to re-run."""
    policy = get_settings().retention
    try:
        actions = with_database(
            lambda db: jobs.run(db, _today(now), policy, upkeep_only=upkeep_only), max_size=4
        )
    except RetentionBusy as exc:
        raise click.ClickException(exc.message) from exc
    _print(actions, "Nothing to do.")
    failed = [a for a in actions if a.status == "failed"]
    if failed:
        # The run carried on past them; the exit status still tells a cron job or an operator.
        raise click.ClickException(f"{len(failed)} action(s) failed; see retention_actions and the log.")


def register(main: click.Group) -> None:
    """Attach the retention commands (and the retention benchmark) to the CLI."""
    main.add_command(retention_group)
