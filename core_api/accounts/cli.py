"""The core API's commands: ``corp-astro users create-admin EMAIL`` and ``corp-astro users set-role``."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import click

from kernel.auth import hash_password
from kernel.errors import DomainError

__all__ = ["register"]

T = TypeVar("T")
PASSWORD_ENV = "CORP_ASTRO_ADMIN_PASSWORD"  # noqa: S105 (a variable name, not a secret)


def _run(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the configured database; domain errors exit with status 1."""
    from kernel.cli import with_database
    from kernel.db import Database

    async def in_transaction(db: Database) -> T:
        async with db.transaction() as conn:
            return await work(conn)

    try:
        return with_database(in_transaction, max_size=1)
    except DomainError as exc:
        details = exc.details if isinstance(exc.details, list) else []
        lines = [exc.message, *(f"  {d.get('message')}" for d in details if isinstance(d, dict))]
        raise click.ClickException("\n".join(lines)) from exc


@click.group()
def users() -> None:
    """User accounts and roles."""


@users.command("create-admin")
@click.argument("email")
@click.option("--first-name", default="Admin", show_default=True)
@click.option("--last-name", default="User", show_default=True)
def create_admin(email: str, first_name: str, last_name: str) -> None:
    """Create an admin account for EMAIL.

    The password is read from CORP_ASTRO_ADMIN_PASSWORD, or prompted for (hidden, twice).
    """
    import msgspec

    from core_api.accounts import service
    from core_api.accounts.schemas import RegisterRequest

    password = os.environ.get(PASSWORD_ENV) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        data = msgspec.convert(
            {"email": email, "password": password, "first_name": first_name, "last_name": last_name},
            RegisterRequest,
        )
    except msgspec.ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        service.check_password_policy(data.password, data.email)
    except DomainError as exc:
        problems = "; ".join(d["message"] for d in exc.details or ())
        raise click.ClickException(f"{exc.message} {problems}") from exc
    password_hash = hash_password(data.password)

    async def work(conn: asyncpg.Connection) -> str:
        from kernel import audit

        user = await service.create_account(conn, data, password_hash, role="admin")
        await audit.record(
            conn,
            "role_changed",
            subject_id=str(user.user_id),
            details={"from": None, "to": "admin", "via": "cli"},
        )
        return str(user.user_id)

    user_id = _run(work)
    click.echo(f"Created admin {email} ({user_id}).")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["user", "analyst", "admin"]))
def set_role(email: str, role: str) -> None:
    """Set the role of the account with EMAIL (recorded in the audit log)."""
    from core_api.accounts import service

    async def work(conn: asyncpg.Connection) -> tuple[str, str]:
        return await service.set_role(conn, email, role, via="cli")

    old, new = _run(work)
    click.echo(f"{email}: {old} -> {new}" if old != new else f"{email} already has the {new} role.")


def register(main: click.Group) -> None:
    """Attach the ``users`` command group to the ``corp-astro`` CLI."""
    main.add_command(users)
