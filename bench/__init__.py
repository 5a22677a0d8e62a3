"""Benchmarks: each command prints its figure beside a baseline measured in the same run.

Not installed with the package: ``corp-astro bench ...`` finds this folder in a source checkout. Each
module named in ``COMMANDS`` exposes one click command; heavy imports happen inside the commands.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "attach"]

# (module, command attribute)
COMMANDS = (
    ("bench.ingest.command", "bench_ingest"),
    ("bench.assign", "bench_assign"),
    ("bench.rollup", "rollup_bench"),
    ("bench.retention", "bench_retention"),
    ("bench.conversions", "bench_conversions"),
    ("bench.results", "bench_results"),
    ("bench.daily", "bench_daily"),
    ("bench.webhooks", "bench_webhooks"),
    ("bench.workflows", "bench_workflows"),
    ("bench.access_log", "bench_access_log"),
    ("bench.app", "bench_app"),
)


def attach(group: click.Group) -> None:
    """Add every benchmark command that exists to ``group``."""
    for module_name, attr in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        group.add_command(getattr(module, attr))
