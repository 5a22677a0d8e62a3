"""GET /metrics on a real server: the text format parses, the counters move with traffic, protection."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.ingest.conftest import KeyedSource, count, track
from tests.support import ROOT, LiveServer

TOKEN = "metrics-test-token-0123456789"


def scrape(
    server: LiveServer, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}."""
    r = httpx.get(server.base_url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def events(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return value(samples, "corp_astro_ingest_events_total", outcome=outcome)


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    """A server without a metrics token: /metrics answers loopback clients only."""
    with LiveServer(database_url) as s:
        yield s


def post(server: LiveServer, source: KeyedSource, batch: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/batch", json={"batch": batch}, headers=source.auth, timeout=30)


async def test_counters_move_with_traffic(
    server: LiveServer, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    before = scrape(server)
    run = uuid.uuid4().hex[:8]
    batch = [track(f"m-{run}-{i}") for i in range(37)]
    r = post(server, source, batch)
    assert r.status_code == 200
    assert r.json()["accepted"] == 37
    after = scrape(server)
    assert events(after, "accepted") - events(before, "accepted") == 37
    assert await count(conn, "analytics_events", "message_id LIKE $1", f"m-{run}-%") == 37

    # The same batch again: 37 duplicates, nothing accepted.
    assert post(server, source, batch).json()["duplicates"] == 37
    again = scrape(server)
    assert events(again, "duplicate") - events(after, "duplicate") == 37
    assert events(again, "accepted") == events(after, "accepted")

    # One valid event and one without an event name: one accepted, one rejected by reason.
    mixed = [track(f"m-{run}-ok"), {k: v for k, v in track(f"m-{run}-bad").items() if k != "event"}]
    body = post(server, source, mixed).json()
    assert body["accepted"] == 1
    assert [e["reason"] for e in body["rejected"]] == ["missing_event"]
    last = scrape(server)
    assert events(last, "rejected") - events(again, "rejected") == 1
    reason = "corp_astro_ingest_rejected_events_total"
    assert value(last, reason, reason="missing_event") - value(again, reason, reason="missing_event") == 1

    # HTTP requests by route template and status, with the latency histogram.
    route = {"route": "/v1/batch", "status": "200"}
    assert (
        value(last, "corp_astro_http_requests_total", **route)
        - value(before, "corp_astro_http_requests_total", **route)
        == 3
    )
    assert value(last, "corp_astro_http_request_duration_seconds_count", route="/v1/batch") >= 3
    assert value(last, "corp_astro_ingest_flush_events_count") >= 2
    assert value(last, "corp_astro_ingest_flush_duration_seconds_count") >= 2


def test_route_labels_are_templates(server: LiveServer) -> None:
    """Paths with ids and unknown paths do not make new label values."""
    for name in ("a", "b", "c"):
        httpx.post(server.base_url + f"/v1/experiments/{name}/assignments", json={}, timeout=10)
    for n in range(3):
        httpx.get(server.base_url + f"/no/such/path/{n}", timeout=10)
    samples = scrape(server)
    routes = {dict(labels)["route"] for name, labels in samples if name == "corp_astro_http_requests_total"}
    assert "/v1/experiments/{name}/assignments" in routes
    assert "unmatched" in routes
    assert not any(r.startswith("/no/such") or "/a/" in r for r in routes)
    assert value(samples, "corp_astro_http_requests_total", route="unmatched", status="404") >= 3


def test_scrape_time_gauges_are_present(server: LiveServer) -> None:
    samples = scrape(server)
    names = {name for name, _ in samples}
    for name in (
        "corp_astro_rollup_lag_days",
        "corp_astro_default_partition_oldest_event_age_seconds",
        "corp_astro_webhook_queue_oldest_due_seconds",
        "corp_astro_workflow_queue_oldest_due_seconds",
        "corp_astro_db_pool_connections_in_use",
        "corp_astro_db_pool_waiting",
        "corp_astro_ingest_pending_events",
        "corp_astro_backup_last_success_timestamp_seconds",
        "corp_astro_backup_verify_last_result",
    ):
        assert name in names, name
    assert value(samples, "corp_astro_backup_verify_last_result") == -1  # no verify in this data dir
    assert value(samples, "corp_astro_default_partition_oldest_event_age_seconds") >= 0
    errors = [k for k in samples if k[0] == "corp_astro_metrics_collector_errors_total"]
    assert errors == []


def test_loopback_only_without_a_token(server: LiveServer) -> None:
    """An X-Forwarded-For from an untrusted peer is not believed either way."""
    assert (
        httpx.get(server.base_url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    )


def test_not_loopback_is_refused(database_url: str) -> None:
    """The peer is a trusted proxy (loopback here): the client it names is not loopback, so 403."""
    env = {"CORP_ASTRO_TRUSTED_PROXIES": "127.0.0.1/32"}
    with LiveServer(database_url, env=env) as s:
        r = httpx.get(s.base_url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
        assert r.status_code == 403
        assert r.json()["code"] == "forbidden"
        assert "CORP_ASTRO_METRICS_TOKEN" in r.json()["message"]
        assert httpx.get(s.base_url + "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_token_is_required_when_set(database_url: str) -> None:
    with LiveServer(database_url, env={"CORP_ASTRO_METRICS_TOKEN": TOKEN}) as s:
        url = s.base_url + "/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = httpx.get(url, headers=headers, timeout=10)
            assert r.status_code == 401, headers
            assert set(r.json()) >= {"code", "message"}
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 200


def test_metrics_off(database_url: str) -> None:
    with LiveServer(database_url, env={"CORP_ASTRO_METRICS": "0"}) as s:
        assert httpx.get(s.base_url + "/metrics", timeout=10).status_code == 404


async def test_two_workers_are_summed(
    database_url: str, source: KeyedSource, conn: asyncpg.Connection
) -> None:
    """serve --workers 2: one scrape sums both processes' files; the scheduler runs in exactly one."""
    s = LiveServer(database_url, args=("--workers", "2"), scheduler=True)
    # Two processes import the whole app at once: on this loaded 2-core machine that took 51 s.
    s.start(timeout=150)
    try:
        run = uuid.uuid4().hex[:8]

        def send(n: int) -> int:
            # A new connection per request: the kernel spreads accepted connections over the workers.
            r = httpx.post(
                s.base_url + "/v1/batch",
                json={"batch": [track(f"w-{run}-{n}-{i}") for i in range(5)]},
                headers=source.auth,
                timeout=30,
            )
            return int(r.json()["accepted"])

        accepted = sum(await asyncio.gather(*(asyncio.to_thread(send, n) for n in range(40))))
        assert accepted == 200
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            samples = scrape(s)
            if (
                value(samples, "corp_astro_worker_processes") == 2
                or asyncio.get_running_loop().time() > deadline
            ):
                break
            await asyncio.sleep(0.5)
        assert value(samples, "corp_astro_worker_processes") == 2
        assert value(samples, "corp_astro_scheduler_processes") == 1
        assert events(samples, "accepted") == 200
        assert await count(conn, "analytics_events", "message_id LIKE $1", f"w-{run}-%") == 200
    finally:
        s.stop()


def test_alert_rules_in_the_runbook_use_served_metrics(server: LiveServer, tmp_path: Path) -> None:
    """Every rule group in docs/operations.md is valid YAML with the rule fields, and every metric its
    expressions name is one /metrics serves; promtool checks them too where it is installed."""
    text = (ROOT / "docs" / "operations.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
    rules = [rule for b in blocks if "groups" in b for g in b["groups"] for rule in g["rules"]]
    alerts = {rule["alert"] for rule in rules}
    assert {
        "CorpAstroRollupLag",
        "CorpAstroDefaultPartitionNotEmpty",
        "CorpAstroIngest503Rate",
        "CorpAstroBackupTooOld",
        "CorpAstroBackupVerifyFailed",
    } <= alerts
    served = {name for name, _ in scrape(server)}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "annotations"}
        for name in re.findall(r"corp_astro_\w+", rule["expr"]):
            assert name in served, (rule["alert"], name)
    promtool = shutil.which("promtool")
    if promtool:
        for n, block in enumerate(b for b in blocks if "groups" in b):
            path = tmp_path / f"rules-{n}.yml"
            path.write_text(yaml.safe_dump(block))
            done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
