"""Logs: one short text line per record on a terminal, JSON lines otherwise; the access log on, off or
sampled (errors and slow requests always kept); scheduled jobs under their ``<domain>.<job>`` names."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pty
import random
import re
from typing import Any

import orjson
import pytest
from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from litestar.testing import AsyncTestClient

from kernel import observability
from kernel.observability import (
    JsonFormatter,
    RequestIdMiddleware,
    TextFormatter,
    configure_logging,
    keep_access,
    request_id_var,
    resolve_format,
)
from kernel.scheduler import create_scheduler
from kernel.settings import AccessLog


def record(name: str, msg: str, **extra: Any) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": name, "msg": msg, "levelname": "INFO", "levelno": logging.INFO})
    rec.__dict__.update(extra)
    rec.created, rec.msecs = 1_796_000_000.25, 250.0
    return rec


def test_text_line_is_time_level_logger_message_and_extras() -> None:
    line = TextFormatter().format(
        record(
            "aggregation.jobs", "job finished", job="aggregation.daily", periods={"ok": 2}, note="two words"
        )
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.250 INFO    aggregation\.jobs: job finished job=aggregation\.daily "
        r'periods=\{"ok":2\} note="two words"',
        line,
    ), line


def test_text_access_line() -> None:
    rec = record(
        "corp_astro.access",
        "request",
        method="GET",
        path="/v1/batch",
        status=200,
        ms=3.14,
        client="127.0.0.1",
    )
    token = request_id_var.set("abc")
    try:
        line = TextFormatter().format(rec)
    finally:
        request_id_var.reset(token)
    assert line.endswith(" INFO    access: 200 GET /v1/batch 3.1 ms 127.0.0.1"), line
    assert len(line) < 80


def test_json_line_keeps_its_fields() -> None:
    rec = record("corp_astro.access", "request", method="GET", path="/x", status=404, ms=1.5, client=None)
    token = request_id_var.set("rid-1")
    try:
        entry = orjson.loads(JsonFormatter().format(rec))
    finally:
        request_id_var.reset(token)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "corp_astro.access"
    assert entry["msg"] == "request"
    assert (entry["request_id"], entry["status"], entry["path"], entry["ms"]) == ("rid-1", 404, "/x", 1.5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(os.dup(follower), "w") as tty:
            assert resolve_format("auto", tty) == "text"
            assert resolve_format("json", tty) == "json"
    finally:
        os.close(leader)
        os.close(follower)
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


def test_sampling_decisions() -> None:
    on, off, sample = AccessLog("on"), AccessLog("off"), AccessLog("sample", rate=0.01, slow_ms=500)
    assert keep_access(on, 200, 1.0, 0.99)
    assert not keep_access(off, 500, 9999.0, 0.0)
    assert keep_access(sample, 200, 1.0, 0.005)
    assert not keep_access(sample, 200, 1.0, 0.02)
    for status in (400, 404, 413, 429, 499, 500, 503):
        assert keep_access(sample, status, 1.0, 0.99)
    assert keep_access(sample, 200, 500.0, 0.99)
    assert not keep_access(sample, 200, 499.9, 0.99)
    assert not keep_access(AccessLog("sample", rate=0.0), 204, 1.0, 0.0)
    draws = random.Random(7)
    kept = sum(keep_access(sample, 200, 1.0, draws.random()) for _ in range(100_000))
    assert 800 < kept < 1200  # 1 % of 100,000


@pytest.mark.parametrize(
    ("bad", "message"), [({"mode": "some"}, "one of on, off, sample"), ({"rate": 1.5}, "between 0 and 1")]
)
def test_bad_access_settings_are_refused(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccessLog(**bad)


def test_access_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORP_ASTRO_ACCESS_LOG_SAMPLE", "0.05")
    assert AccessLog.from_env() == AccessLog("sample", 0.05, 1000.0)
    monkeypatch.setenv("CORP_ASTRO_ACCESS_LOG", "off")
    assert AccessLog.from_env().mode == "off"


async def _served(policy: AccessLog, paths: list[str]) -> list[str]:
    """The access lines (text) written while serving ``paths`` under ``policy``."""

    @get("/ok")
    async def ok() -> str:
        return "ok"

    @get("/missing")
    async def missing() -> str:
        raise NotFoundException("no such thing")

    @get("/slow")
    async def slow() -> str:
        await asyncio.sleep(0.06)
        return "slow"

    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, observability._access_policy
    configure_logging("INFO", fmt="text", access=policy, stream=out)
    try:
        async with AsyncTestClient(
            Litestar([ok, missing, slow], middleware=[RequestIdMiddleware], logging_config=None)
        ) as client:
            for path in paths:
                await client.get(path)
    finally:
        root.handlers[:], root.level, observability._access_policy = saved
    return [line for line in out.getvalue().splitlines() if " access: " in line]


async def test_access_log_on_off_and_sampled() -> None:
    paths = ["/ok"] * 50 + ["/missing"] * 3 + ["/slow"]
    on = await _served(AccessLog("on"), paths)
    assert len(on) == 54
    assert re.search(r" INFO    access: 200 GET /ok \d+\.\d ms testclient$", on[0]), on[0]
    assert await _served(AccessLog("off"), paths) == []
    sampled = await _served(AccessLog("sample", rate=0.0, slow_ms=50), paths)
    assert [line.split("access: ")[1].split()[:3] for line in sampled] == [
        ["404", "GET", "/missing"]] * 3 + [["200", "GET", "/slow"]]  # fmt: skip


def test_jobs_need_a_domain_name_and_log_under_it() -> None:
    scheduler = create_scheduler()
    with pytest.raises(ValueError, match=r"<domain>\.<job>"):
        scheduler.add_job(lambda: None, "interval", hours=1)
    with pytest.raises(ValueError, match=r"<domain>\.<job>"):
        scheduler.add_job(lambda: None, "interval", hours=1, id="partition-upkeep")

    seen: list[str | None] = []

    async def _run() -> None:
        seen.append(observability.job_var.get())
        logging.getLogger("test.jobs").warning("ran")

    job = scheduler.add_job(_run, "interval", hours=1, id="retention.partition_upkeep")
    assert (job.id, job.name, job.func.__name__) == ("retention.partition_upkeep",) * 3
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("test.jobs")
    logger.addHandler(handler)
    try:
        asyncio.run(job.func())
    finally:
        logger.removeHandler(handler)
    assert seen == ["retention.partition_upkeep"]
    assert out.getvalue().rstrip().endswith("test.jobs: ran job=retention.partition_upkeep")
    assert observability.job_var.get() is None
