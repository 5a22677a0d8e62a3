"""Commands of the integrations domain: ``corp-astro workflows ...`` (``integrations.workflows.cli``)."""

from __future__ import annotations

import click

from integrations.workflows import cli as workflows_cli

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Attach the integrations commands."""
    workflows_cli.register(main)
