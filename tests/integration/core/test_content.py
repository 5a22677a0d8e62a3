"""Businesses with analyses, and reports with ordered sections and filters, as their owner uses them."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from tests.integration.core.conftest import Actor


async def test_business_crud_and_analyses(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, alice: Actor
) -> None:
    h = alice.headers
    r = await client.post(
        "/v1/businesses",
        headers=h,
        json={
            "name": "Acme",
            "registration_date": "2001-04-01",
            "registration_time": "09:15:00",
            "website": "https://acme.test",
        },
    )
    assert r.status_code == 201
    business = r.json()
    bid = business["business_id"]
    assert business["user_id"] == str(alice.user_id)
    r = await client.patch(
        f"/v1/businesses/{bid}", headers=h, json={"industry": "Aerospace", "website": None}
    )
    assert r.status_code == 200
    assert r.json()["industry"] == "Aerospace"
    assert r.json()["website"] is None
    assert r.json()["name"] == "Acme"
    for kind in ("natal", "transit", "natal"):
        r = await client.post(
            f"/v1/businesses/{bid}/analyses",
            headers=h,
            json={"analysis_type": kind, "chart_data": {"sun": kind}},
        )
        assert r.status_code == 201
    natal = (await client.get(f"/v1/businesses/{bid}/analyses?analysis_type=natal", headers=h)).json()
    assert len(natal["items"]) == 2
    page = (await client.get(f"/v1/businesses/{bid}/analyses?limit=2", headers=h)).json()
    rest = (
        await client.get(f"/v1/businesses/{bid}/analyses?limit=2&cursor={page['next_cursor']}", headers=h)
    ).json()
    assert len({a["analysis_id"] for a in page["items"] + rest["items"]}) == 3
    assert rest["next_cursor"] is None

    report = (
        await client.post(
            "/v1/reports", headers=h, json={"report_type": "m", "title": "T", "business_id": bid}
        )
    ).json()
    assert (await client.delete(f"/v1/businesses/{bid}", headers=h)).status_code == 204
    assert (await client.get(f"/v1/businesses/{bid}", headers=h)).status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM business_analyses") == 0
    # The report outlives the business, unlinked (ON DELETE SET NULL).
    assert (await client.get(f"/v1/reports/{report['report_id']}", headers=h)).json()["business_id"] is None


async def test_business_list_pages_through_everything_once(
    client: AsyncTestClient[Any], alice: Actor
) -> None:
    h = alice.headers
    created = {
        (await client.post("/v1/businesses", headers=h, json={"name": f"B{i}"})).json()["business_id"]
        for i in range(7)
    }
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/businesses?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=h)).json()
        assert len(page["items"]) <= 3
        seen += [b["business_id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert set(seen) == created


async def test_report_with_sections_filters_and_replacement(
    client: AsyncTestClient[Any], alice: Actor
) -> None:
    h = alice.headers
    sections = [
        {"title": "Outlook", "content": "...", "order": 3},
        {"title": "Summary", "content": "...", "order": 1},
        {"title": "Details", "content": "...", "order": 2},
    ]
    r = await client.post(
        "/v1/reports",
        headers=h,
        json={
            "report_type": "quarterly",
            "title": "Q3",
            "generated_date": "2026-10-01",
            "period_start": "2026-07-01",
            "period_end": "2026-09-30",
            "sections": sections,
        },
    )
    assert r.status_code == 201
    q3 = r.json()
    assert [s["title"] for s in q3["sections"]] == ["Summary", "Details", "Outlook"]
    for date, kind, status in (
        ("2026-01-05", "monthly", "active"),
        ("2026-02-05", "monthly", "archived"),
        ("2026-03-05", "annual", "draft"),
    ):
        r = await client.post(
            "/v1/reports",
            headers=h,
            json={"report_type": kind, "title": kind, "generated_date": date, "status": status},
        )
        assert r.status_code == 201

    async def titles(query: str) -> list[str]:
        body = (await client.get(f"/v1/reports?{query}", headers=h)).json()
        assert "sections" not in (body["items"][0] if body["items"] else {})
        return [i["generated_date"] for i in body["items"]]

    assert await titles("") == ["2026-10-01", "2026-03-05", "2026-02-05", "2026-01-05"]
    assert await titles("report_type=monthly") == ["2026-02-05", "2026-01-05"]
    assert await titles("status=archived") == ["2026-02-05"]
    assert await titles("generated_from=2026-02-01&generated_to=2026-03-31") == ["2026-03-05", "2026-02-05"]
    assert await titles("report_type=monthly&status=active&generated_from=2026-01-01") == ["2026-01-05"]
    first = (await client.get("/v1/reports?limit=3", headers=h)).json()
    second = (await client.get(f"/v1/reports?limit=3&cursor={first['next_cursor']}", headers=h)).json()
    assert [i["generated_date"] for i in second["items"]] == ["2026-01-05"]

    rid = q3["report_id"]
    r = await client.patch(
        f"/v1/reports/{rid}", headers=h, json={"sections": [{"title": "Only", "content": "x", "order": 0}]}
    )
    assert [s["title"] for s in r.json()["sections"]] == ["Only"]
    assert r.json()["title"] == "Q3"
    r = await client.patch(f"/v1/reports/{rid}", headers=h, json={"status": "archived"})
    assert r.json()["status"] == "archived"
    assert [s["title"] for s in r.json()["sections"]] == ["Only"]  # untouched when not given
    assert (await client.delete(f"/v1/reports/{rid}", headers=h)).status_code == 204
    assert (await client.get(f"/v1/reports/{rid}", headers=h)).status_code == 404
