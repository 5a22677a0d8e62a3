"""The web app in headless Chromium: sign in, read an experiment (numbers equal the API's), SRM,
pause from the page, run and download an export, screenshots, axe-core, and no request off the machine."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.browser.conftest import Visit, api_token
from tests.integration.experiments.conftest import definition, seed_arm, variant_ids

pytestmark = pytest.mark.slow


def number(text: str) -> float:
    """A number as the page prints it: ``+1.0 pp``, ``\u22120.4`` (a real minus), ``10,000``, ``11.00 %``, ``<0.001``."""
    cleaned = text.replace("\u2212", "-").replace(",", "").replace("pp", "").replace("%", "")
    return float(cleaned.replace("<", "").replace(">", "").strip())


def places(text: str) -> int:
    core = text.replace("pp", "").replace("%", "").strip()
    return len(core.split(".")[1]) if "." in core else 0


def assert_shown(text: str, value: float, scale: float = 1.0) -> None:
    """The page's text is the API's value, rounded to the decimals the page shows."""
    shown = number(text)
    if text.startswith("<"):
        assert value * scale < shown, (text, value)
        return
    tolerance = 0.5 * 10 ** -places(text) + 1e-12
    assert math.isclose(shown, value * scale, abs_tol=tolerance), (text, value * scale)


def p_shown(text: str, value: float) -> None:
    if text.startswith("<"):
        assert value < 0.001
    else:
        assert_shown(text, float(f"{value:.3g}") if value < 0.01 else value)


async def create_experiment(server: Any, admin: dict[str, str], name: str, **overrides: Any) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.post("/v1/experiments", json=definition(name, **overrides), headers=admin)
        assert r.status_code == 201, r.text


async def api_results(server: Any, headers: dict[str, str], name: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.get(f"/v1/experiments/{name}/results", headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


async def _cells(row: Any) -> dict[str, str]:
    out = {}
    for cls in ("units", "value", "lift", "lift-ci", "relative", "p", "adjusted-p", "chance", "sequential-p"):
        cell = row.locator(f"td.{cls}")
        if await cell.count():
            out[cls] = (await cell.inner_text()).strip()
    return out


async def test_experiment_page_shows_the_apis_numbers(
    visit: Visit, people: dict[str, str], conn: asyncpg.Connection
) -> None:
    """Three arms with known counts (the gbstats golden case of tests/integration/experiments)."""
    admin = await api_token(visit.server, people["admin"])
    three = [
        {"name": "control", "traffic_percentage": 33.33},
        {"name": "a", "traffic_percentage": 33.33},
        {"name": "b", "traffic_percentage": 33.34},
    ]
    await create_experiment(visit.server, admin, "checkout", variants=three)
    test_id, v = await variant_ids(conn, "checkout")
    for arm, users, conversions in (("control", 10000, 1000), ("a", 10000, 1100), ("b", 9800, 1020)):
        await seed_arm(conn, test_id, v[arm], users, conversions)
        # The aggregation job's daily counts behind the cumulative chart: the same totals over 3 days.
        await conn.executemany(
            "INSERT INTO experiment_daily (test_id, variant_id, day, assigned, converted) VALUES ($1, $2, $3, $4, $5)",
            [(test_id, v[arm], dt.date(2026, 11, 27 + d), users // 3 + (users % 3 if d == 2 else 0),
              conversions // 3 + (conversions % 3 if d == 2 else 0)) for d in range(3)],
        )  # fmt: skip
    api = await api_results(visit.server, await api_token(visit.server, people["analyst"]), "checkout")

    await visit.sign_in(people["analyst"])
    assert await visit.axe_violations() == []
    await visit.screenshots("experiments")
    await visit.page.get_by_role("link", name="checkout").click()
    await visit.page.wait_for_url("**/app/experiments/checkout")
    page = visit.page
    section = page.locator('section[data-metric="conversion"]')
    for variant in api["variants"]:
        cells = await _cells(section.locator(f'table.variants tr[data-variant="{variant["name"]}"]'))
        assert cells["units"] == f"{variant['users']:,}"
        assert_shown(cells["value"], variant["conversion_rate"], 100)
    for c in api["comparisons"]:
        cells = await _cells(section.locator(f'table.comparisons tr[data-variant="{c["variant"]}"]'))
        assert_shown(cells["lift"], c["absolute_lift"], 100)
        low, high = cells["lift-ci"].strip("[]").split(", ")
        assert_shown(low, c["absolute_ci"][0], 100)
        assert_shown(high, c["absolute_ci"][1], 100)
        assert_shown(cells["relative"], c["relative_lift"], 100)
        p_shown(cells["p"], c["p_value"])
        p_shown(cells["adjusted-p"], c["adjusted_p_value"])
        p_shown(cells["sequential-p"], c["sequential_p_value"])
        assert cells["chance"] == f"{round(c['chance_to_beat_control'] * 100)} %"
    mde_now = (await page.locator("#power dd.mde-now").inner_text()).split(" (")[0]
    assert_shown(mde_now, api["power"]["mde_at_current_n"], 100)
    assert (
        await page.locator("#power dd.needed").inner_text()
    ) == f"{api['power']['users_needed_for_mde']:,}"
    assert await page.locator("#srm-banner").count() == 0
    # The script shows times in the viewer's zone (New York here), not the server's UTC text.
    stamp = page.locator("time").first
    iso = await stamp.get_attribute("datetime")
    shown = await stamp.inner_text()
    local = await page.evaluate(
        "iso => new Date(iso).toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'})", iso
    )
    assert shown == local
    assert "UTC" not in shown
    # a beats the control (Holm p 0.042 < 0.05): the primary metric is winning.
    assert (await page.locator("#verdict-chip").inner_text()) == "Winning"

    for chart in (section.locator("svg.forest"), page.locator("#cumulative svg.line")):
        box = await chart.bounding_box()
        assert box is not None
        assert box["width"] > 0
        assert box["height"] > 0
    # The cumulative chart's last day is the whole experiment: its legend names every variant.
    legend = await page.locator("#cumulative svg.line text.legend").all_text_contents()
    assert legend == ["control", "a", "b"]
    assert await visit.axe_violations() == []
    await visit.screenshots("experiment")


async def test_srm_banner(visit: Visit, people: dict[str, str], conn: asyncpg.Connection) -> None:
    """1,000 against 1,200 on a 50/50 split is a sample ratio mismatch: the banner says so."""
    await create_experiment(visit.server, await api_token(visit.server, people["admin"]), "skewed")
    test_id, v = await variant_ids(conn, "skewed")
    await seed_arm(conn, test_id, v["control"], 1000, 100)
    await seed_arm(conn, test_id, v["green"], 1200, 120)
    # The sign-in page: accessible, usable from the keyboard (the first Tab lands on the skip link).
    await visit.page.goto(visit.url("/app/experiments/skewed"))
    await visit.page.wait_for_url("**/app/login?next=/app/experiments/skewed")
    assert await visit.axe_violations() == []
    await visit.screenshots("login")
    await visit.page.keyboard.press("Tab")
    assert await visit.page.evaluate("document.activeElement.textContent") == "Skip to content"
    await visit.sign_in(people["analyst"])
    row = visit.page.locator('tr[data-experiment="skewed"] .chip')
    assert (await row.inner_text()) == "SRM"
    await visit.page.goto(visit.url("/app/experiments/skewed"))
    banner = visit.page.locator("#srm-banner")
    assert await banner.is_visible()
    text = await banner.inner_text()
    assert "Sample ratio mismatch" in text
    assert "45.45 %" in text  # observed share of the control: 1,000 / 2,200
    assert "50.00 %" in text  # expected
    assert await visit.axe_violations() == []
    await visit.screenshots("experiment-srm")


async def test_admin_pauses_from_the_page(visit: Visit, people: dict[str, str]) -> None:
    admin = await api_token(visit.server, people["admin"])
    await create_experiment(visit.server, admin, "checkout")
    await visit.sign_in(people["admin"])
    await visit.page.goto(visit.url("/app/experiments/checkout"))
    await visit.page.get_by_role("link", name="Pause…").click()
    assert "Pause the experiment checkout?" in await visit.page.inner_text("main")
    assert await visit.axe_violations() == []
    await visit.page.get_by_role("button", name="Confirm").click()
    await visit.page.wait_for_url("**/app/experiments/checkout?done=paused")
    assert "status is now paused" in await visit.page.inner_text("main")
    async with httpx.AsyncClient(base_url=visit.server.base_url) as client:
        r = await client.get("/v1/experiments/checkout", headers=admin)
    assert r.json()["status"] == "paused"


async def _ingest(server: Any, conn: asyncpg.Connection, day: dt.date) -> None:
    """Three events through the Segment API, so that the export has rows."""
    from tests.integration.experiments.conftest import basic, make_write_key

    key = await make_write_key(conn)
    stamp = f"{day.isoformat()}T12:00:00Z"
    batch = [
        {
            "type": "track",
            "event": name,
            "anonymousId": f"anon-{i}",
            "timestamp": stamp,
            "messageId": f"m-{i}",
        }
        for i, name in enumerate(("Signed Up", "Viewed Chart", "Viewed Chart"))
    ]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert r.status_code == 200, r.text


async def test_export_runs_and_downloads(
    visit: Visit, people: dict[str, str], conn: asyncpg.Connection
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    await _ingest(visit.server, conn, today)
    await visit.sign_in(people["analyst"])
    await visit.page.get_by_role("link", name="Exports").click()
    await visit.page.get_by_role("button", name="Start export").click()
    row = visit.page.locator("table.exports tbody tr").first
    # The page's script polls the export's status until it is done, then links the file.
    link = row.get_by_role("link", name="Download")
    await link.wait_for(timeout=60_000)
    assert (await row.get_attribute("data-status")) == "done"
    assert number(await row.locator("td.rows").inner_text()) == 3
    async with visit.page.expect_download() as info:
        await link.click()
    download = await info.value
    path = await download.path()
    head = await asyncio.to_thread(lambda: Path(path).read_bytes()[:4])
    assert head == b"PAR1"  # a Parquet file
    assert await visit.axe_violations() == []
    await visit.screenshots("exports")


async def test_analytics_page(visit: Visit, people: dict[str, str], conn: asyncpg.Connection) -> None:
    """Rollup rows (as the aggregation job writes them) drawn as charts and listed as top events."""
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=d) for d in range(3)]
    await conn.executemany(
        "INSERT INTO active_users_daily (day, dau, wau, mau) VALUES ($1, $2, $3, $4)",
        [(d, 1200 + i, 5000 + i, 21000 + i) for i, d in enumerate(days)],
    )
    await conn.executemany(
        """INSERT INTO event_rollups_daily (day, event_name, event_category, events, users, devices, sessions)
           VALUES ($1, $2, 'app', $3, 1, 1, 1)""",
        [(d, name, n) for d in days for name, n in (("Viewed Chart", 12000), ("Signed Up", 300))],
    )
    await visit.sign_in(people["analyst"])
    await visit.page.get_by_role("link", name="Analytics").click()
    for css in ("svg.line", "svg.bars"):
        box = await visit.page.locator(css).bounding_box()
        assert box is not None
        assert box["width"] > 0
    assert await visit.page.locator("svg.line polyline").count() == 3  # DAU, WAU, MAU
    assert await visit.page.locator("svg.bars rect").count() == 3 * 2 + 2  # segments + legend
    top = await visit.page.locator("table.top tbody tr").all_inner_texts()
    assert [t.split("\t")[:2] for t in top] == [["Viewed Chart", "36,000"], ["Signed Up", "900"]]
    assert await visit.axe_violations() == []
    await visit.screenshots("analytics")
    await visit.page.get_by_label("Bars").select_option("hour")
    await visit.page.get_by_label("From").fill(today.isoformat())
    await visit.page.get_by_role("button", name="Show").click()
    await visit.page.wait_for_url("**granularity=hour**")
    assert "No events in this range." in await visit.page.inner_text("main")  # no hourly rows seeded
