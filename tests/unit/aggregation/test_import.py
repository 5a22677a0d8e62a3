"""Importing the domain has no side effects: no Polars loaded, no allocator setting in the environment."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_aggregation_loads_no_polars_and_sets_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    code = (
        "import os, sys, aggregation, aggregation.routes, aggregation.jobs, aggregation.cli, retention.jobs;"
        "print('polars' in sys.modules, '_RJEM_MALLOC_CONF' in os.environ)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
