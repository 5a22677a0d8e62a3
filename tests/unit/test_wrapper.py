"""``./corp-astro``: the README's commands work as printed, from the checkout, with nothing activated."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_wrapper_runs_the_cli() -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # nothing of the venv on the PATH
    out = subprocess.run(
        [str(ROOT / "corp-astro"), "--help"], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    assert "retention" in out.stdout
    assert "serve" in out.stdout
