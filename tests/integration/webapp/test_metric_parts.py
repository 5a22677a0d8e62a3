"""The experiment page's per-metric parts: the cumulative chart per declared metric (from the daily results)
and the dimension picker's exploratory slices, on data seeded as tests/integration/experiments does."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import asyncpg

from tests.integration.experiments.conftest import bearer, copy_events, create, make_users, variant_ids
from tests.integration.webapp.conftest import Accounts, sign_in
from webapp import fmt

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
EXPOSED = NOW - dt.timedelta(days=3)
OS_OF = ["iOS"] * 12 + ["Android"] * 6  # users 18-19: no events (unknown)


async def _seed(client, conn: asyncpg.Connection, settings, admin_email: str) -> None:
    """An experiment whose primary metric is ``opens``; 20 users, 'open' events with context.os."""
    admin_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", admin_email)
    admin = bearer(settings, admin_id, "admin")
    body = {"name": "opens", "kind": "count", "event": "open", "direction": "increase"}
    r = await client.post("/v1/metrics", json=body, headers=admin)
    assert r.status_code == 201, r.text
    await create(client, admin, primary_metric="opens")
    test_id, arms = await variant_ids(conn, "checkout")
    ids = await make_users(conn, 20)
    await conn.copy_records_to_table(
        "ab_test_assignments",
        records=[
            (uuid.uuid4(), test_id, arms["control" if i % 2 else "green"], u, EXPOSED)
            for i, u in enumerate(ids)
        ],
        columns=["assignment_id", "test_id", "variant_id", "user_id", "assigned_at"],
    )
    events, props = [], []
    for i, os_name in enumerate(OS_OF):
        for k in range(1 + i % 3):
            at = EXPOSED + dt.timedelta(hours=1 + 24 * k)
            ev = (uuid.uuid4(), ids[i], "open", "test", at)
            events.append(ev)
            props.append((uuid.uuid4(), ev[0], "context.os", f'{{"name": "{os_name}"}}', at))
    await copy_events(conn, events, props)


async def test_cumulative_chart_per_metric(
    client, accounts: Accounts, conn: asyncpg.Connection, settings
) -> None:
    await _seed(client, conn, settings, accounts.admin)
    await sign_in(client, accounts.analyst)
    page = await client.get("/app/experiments/checkout")
    assert page.status_code == 200, page.text
    section = page.text[page.text.index('id="cumulative"') : page.text.index('id="dimensions"')]
    chart = re.search(
        r'<div class="scroll chart-wrap daily-chart" data-metric="opens".*?</div>', section, re.S
    )
    assert chart, section
    svg = chart.group(0)
    assert "<svg" in svg
    assert "Cumulative opens per unit" in svg
    assert "<polygon" in svg  # the CI band
    assert svg.count("<polyline") == 2  # one line per variant
    assert "experiment_daily" not in section  # the goal-event fallback is not drawn
    # The days on the x axis are the daily results' days.
    assert EXPOSED.strftime("%m-%d") in svg
    assert NOW.strftime("%m-%d") in svg
    # The picker is a labelled GET form; no slices until one is chosen.
    assert '<label for="dimension">Dimension</label>' in page.text
    assert 'data-slice="' not in page.text


async def test_without_metrics_the_conversion_chart_stays(
    client, accounts: Accounts, conn: asyncpg.Connection, settings
) -> None:
    admin_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", accounts.admin)
    await create(client, bearer(settings, admin_id, "admin"))
    await sign_in(client, accounts.analyst)
    page = await client.get("/app/experiments/checkout")
    assert page.status_code == 200, page.text
    assert "experiment_daily" in page.text
    assert "daily-chart" not in page.text


async def test_dimension_slices(client, accounts: Accounts, conn: asyncpg.Connection, settings) -> None:
    await _seed(client, conn, settings, accounts.admin)
    await sign_in(client, accounts.analyst)
    page = await client.get("/app/experiments/checkout", params={"dimension": "os"})
    assert page.status_code == 200, page.text
    assert "exploratory (not corrected)" in page.text
    assert '<option value="os" selected>' in page.text
    slices = re.findall(r'<table class="slice" data-slice="([^"]+)" data-metric="opens">', page.text)
    assert slices == ["iOS", "Android", "unknown"]
    ios = page.text[page.text.index('data-slice="iOS"') : page.text.index('data-slice="Android"')]
    assert "(12 units)" in ios
    analyst_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", accounts.analyst)
    api = await client.get(
        "/v1/experiments/checkout/results/dimensions/os", headers=bearer(settings, analyst_id, "analyst")
    )
    (metric,) = api.json()["slices"][0]["metrics"]
    green = next(v for v in metric["variants"] if v["name"] == "green")
    row = re.search(r'<tr data-variant="green"[^>]*>.*?<td class="num value">([^<]+)</td>', ios, re.S)
    assert row, ios
    assert row.group(1) == fmt.decimal(green["mean"], fmt.places_for(green["mean"]) + 1)
    bad = await client.get("/app/experiments/checkout", params={"dimension": "browser"})
    assert bad.status_code == 422
    assert "text/html" in bad.headers["content-type"]
