"""The README's quickstart, pasted in order into one bash against a real server on a scratch database.

The fenced block after ``<!-- quickstart`` in README.md is cut into the commands a person would paste (a
command ends where bash can parse everything before it), which run in one ``bash`` with ``set -e`` and
nothing of the virtualenv on the PATH, as in a fresh terminal. Each command's output is checked, so a
failure names the step that broke.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel.settings import AuthLimits
from tests.support import ROOT, LiveServer

BLOCK = re.compile(r"<!-- quickstart\b.*?-->\s*```bash\n(.*?)```", re.S)
MARK = "@@quickstart-step"
VARIANTS = {"control", "guided"}


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the README's quickstart block, comments and blank lines left out."""
    found = BLOCK.search(readme)
    assert found, "README.md has no ```bash block after <!-- quickstart -->"
    commands: list[str] = []
    pending: list[str] = []
    for line in found.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        text = "\n".join(pending)
        if not text.endswith("\\") and _parses(text):
            commands.append(text)
            pending = []
    assert not pending, f"the quickstart ends inside a command: {pending}"
    return commands


def _parses(text: str) -> bool:
    return subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0


def _script(commands: list[str]) -> str:
    lines = ["set -euo pipefail", "shopt -s inherit_errexit"]
    for i, command in enumerate(commands):
        lines += [f"echo '{MARK} {i}'", command]
    lines += [f"echo '{MARK} end'", 'printf "%s\\n" "$TOKEN" "$REFRESH" "$WRITE_KEY"']
    return "\n".join(lines) + "\n"


def _steps(output: str) -> dict[str, str]:
    """Each step's output (stdout and stderr), by the marker printed before it."""
    parts = re.split(rf"^{MARK} (\S+)\n", output, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _objects(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _admin_created(out: str) -> None:
    assert "admin@example.com" in out


def _batch_stored(out: str) -> None:
    (answer,) = _objects(out)
    assert answer["success"] is True
    assert answer["accepted"] == 1


def _sdk_sent(out: str) -> None:
    assert "sent 1 event" in out


def _aggregated(out: str) -> None:
    assert "ok" in out
    assert "failed" not in out


def _counted(out: str) -> None:
    (answer,) = _objects(out)
    counts = {row["event_name"]: row["events"] for row in answer["items"]}
    assert counts.get("Signed Up", 0) >= 1, counts
    assert counts.get("Chart Viewed", 0) >= 1, counts


def _experiment_created(out: str) -> None:
    (answer,) = _objects(out)
    assert answer["name"] == "onboarding"
    assert {v["name"] for v in answer["variants"]} == VARIANTS


def _assigned(out: str) -> None:
    answers = _objects(out)
    assert len(answers) == 8
    assert all(a["variant"] in VARIANTS and a["new"] is True for a in answers)


def _converted(out: str) -> None:
    answers = _objects(out)
    assert len(answers) == 5
    assert all(a["converted_at"] and a["new"] is True for a in answers)


def _results(out: str) -> None:
    assert "onboarding" in out
    for name in VARIANTS:
        assert name in out


def _exported(out: str) -> None:
    assert "2 events" in out


def _parquet_read(out: str) -> None:
    assert "Signed Up" in out
    assert "Chart Viewed" in out


# A substring of exactly one command -> what its output must show. Steps not listed (variables, the
# registrations captured in $USERS) are checked by the steps that use them and by set -e.
CHECKS: dict[str, Callable[[str], None]] = {
    "users create-admin": _admin_created,
    "/v1/batch": _batch_stored,
    "segment.analytics": _sdk_sent,
    "./corp-astro aggregate": _aggregated,
    "/v1/analytics/events": _counted,
    '"$BASE/v1/experiments"': _experiment_created,
    "/assignments": _assigned,
    "/conversions": _converted,
    "experiments results": _results,
    "export events": _exported,
    "polars": _parquet_read,
}


def test_the_quickstart_is_about_fifteen_commands() -> None:
    commands = quickstart_commands((ROOT / "README.md").read_text())
    assert 12 <= len(commands) <= 20, commands
    for key in CHECKS:
        assert sum(key in c for c in commands) == 1, key


def _run_quickstart(base_url: str, database_url: str, tmp_path: Path) -> tuple[int, str]:
    commands = quickstart_commands((ROOT / "README.md").read_text())
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "CORP_ASTRO_ADMIN_PASSWORD"}}
    venv_bin = str(ROOT / ".venv" / "bin")
    env |= {
        # The terminal that ran `make run`, without the virtualenv: the same python3, nothing activated.
        "PATH": os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin),
        "BASE": base_url,
        "DATABASE_URL": database_url,
        "CORP_ASTRO_DATA_DIR": str(tmp_path / "data"),
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run(
        ["bash"],
        input=_script(commands),
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    return proc.returncode, proc.stdout


def test_the_readme_quickstart_pasted_in_order(clean_db: str, tmp_path: Path) -> None:
    stamp = ROOT / ".venv" / ".installed"
    if not stamp.exists() or (ROOT / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        # ./corp-astro would first reinstall the shared .venv (make install), which `make test` does anyway.
        pytest.skip("pyproject.toml is newer than .venv: run `make install` (or `make test`) first")
    commands = quickstart_commands((ROOT / "README.md").read_text())
    defaults = AuthLimits()  # make run's registration limits, not the suite's raised ones
    limits = {
        "CORP_ASTRO_AUTH_REGISTER_IP_ATTEMPTS": str(defaults.register_ip_attempts),
        "CORP_ASTRO_AUTH_REGISTER_GLOBAL_ATTEMPTS": str(defaults.register_global_attempts),
    }
    with LiveServer(clean_db, env=limits, scheduler=True) as server:
        code, output = _run_quickstart(server.base_url, clean_db, tmp_path)
        steps = _steps(output)
        last = max((k for k in steps if k != "end"), key=int, default="none")
        assert code == 0, f"step {last} failed: {commands[int(last)] if last != 'none' else ''}\n{output}"
        for i, command in enumerate(commands):
            for key, check in CHECKS.items():
                if key in command:
                    try:
                        check(steps[str(i)])
                    except AssertionError as exc:
                        raise AssertionError(f"step {i}: {command}\n--- output:\n{steps[str(i)]}") from exc
        token, refresh, write_key = steps["end"].split()
        assert write_key.startswith("ca_wk_")
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            me = http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json()["email"] == "admin@example.com"
            renewed = http.post("/v1/auth/refresh", json={"refresh_token": refresh})
            assert renewed.status_code == 200
            assert renewed.json()["access_token"]
