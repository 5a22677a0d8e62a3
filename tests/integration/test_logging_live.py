"""A real ``corp-astro serve``: text log lines with ``--log-format text`` or on a terminal, JSON lines
with ``--log-format json``; the access log off or sampled; scheduled jobs under their real names."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from kernel.scheduler import JOB_ID
from tests.support import ROOT, free_port


@contextlib.contextmanager
def serve(url: str, *args: str, stderr: IO[bytes] | int) -> Iterator[str]:
    """``corp-astro serve ARGS`` on 127.0.0.1 at INFO, its logs to ``stderr``; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CORP_ASTRO_JWT_SECRET": "test-secret-for-live-servers"}
    env["CORP_ASTRO_LOG_LEVEL"] = "INFO"
    for name in ("CORP_ASTRO_LOG_FORMAT", "CORP_ASTRO_LOG_JSON", "CORP_ASTRO_ACCESS_LOG"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "corp_astro.cli", "serve", "--no-migrate", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=stderr, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited with {proc.returncode}"
            assert time.monotonic() < deadline, "server did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _traffic(base: str) -> None:
    for _ in range(20):
        httpx.get(base + "/health")
    httpx.get(base + "/v1/experiments/nope/results")  # 401


def _logged(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_text_format_prints_one_short_line_per_record(clean_db: str, tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    with log.open("wb") as err, serve(clean_db, "--log-format", "text", "--scheduler", stderr=err) as base:
        _traffic(base)
        time.sleep(0.3)
    lines = _logged(log)
    access = [line for line in lines if " access: " in line][-21:]  # before: the start-up's polls
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO    access: 200 GET /health \d+\.\d ms 127\.0\.0\.1", access[0]
    )
    assert re.search(r" access: 401 GET /v1/experiments/nope/results \d+\.\d ms 127\.0\.0\.1$", access[-1])
    assert not any(line.startswith("{") for line in lines), lines
    assert "color_message" not in "\n".join(lines)
    # The scheduler names every job <domain>.<job>; the functions' names (_run, <locals>) never show.
    text = "\n".join(lines)
    for job in ("experiments.goal_events", "retention.partition_upkeep"):
        assert f'Added job "{job}"' in text, text
    names = re.findall(r'Added job "([^"]+)"', text)
    assert names, text
    assert all(JOB_ID.fullmatch(name) for name in names), names
    assert "<locals>" not in text


def test_json_format_prints_json_lines(clean_db: str, tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    with log.open("wb") as err, serve(clean_db, "--log-format", "json", stderr=err) as base:
        _traffic(base)
        time.sleep(0.3)
    entries = [orjson.loads(line) for line in _logged(log)]
    access = [e for e in entries if e["logger"] == "corp_astro.access"][-21:]
    first: dict[str, Any] = access[0]
    assert (first["msg"], first["method"], first["path"], first["status"]) == (
        "request",
        "GET",
        "/health",
        200,
    )
    assert first["client"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"])


def test_access_log_off_and_sampled(clean_db: str, tmp_path: Path) -> None:
    off, sampled = tmp_path / "off", tmp_path / "sampled"
    with (
        off.open("wb") as err,
        serve(clean_db, "--log-format", "json", "--access-log", "off", stderr=err) as base,
    ):
        _traffic(base)
    with (
        sampled.open("wb") as err,
        serve(clean_db, "--log-format", "json", "--access-log-sample", "0", stderr=err) as base,
    ):
        _traffic(base)
        time.sleep(0.3)
    assert not [line for line in _logged(off) if "corp_astro.access" in line]
    kept = [orjson.loads(line) for line in _logged(sampled) if "corp_astro.access" in line]
    assert [(e["status"], e["path"]) for e in kept] == [(401, "/v1/experiments/nope/results")]


def test_auto_is_text_on_a_terminal(clean_db: str) -> None:
    leader, follower = pty.openpty()
    out = b""
    try:
        with serve(clean_db, stderr=follower) as base:
            _traffic(base)
            deadline = time.monotonic() + 10
            while b"access: 401" not in out and time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], 0.5)
                if ready:
                    out += os.read(leader, 65536)
    finally:
        os.close(follower)
        os.close(leader)
    text = out.decode()
    assert re.search(r"INFO    access: 200 GET /health \d+\.\d ms 127\.0\.0\.1", text), text
    assert '{"ts"' not in text
