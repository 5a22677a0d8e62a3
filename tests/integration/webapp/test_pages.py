"""The web app in process: sign-in and its cookie, CSRF, roles, the pages and the admin's actions."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.experiments.conftest import bearer, create, seed_arm, variant_ids
from tests.integration.webapp.conftest import Accounts, csrf_of, sign_in


async def test_sign_in_sets_a_scoped_http_only_cookie(client, accounts: Accounts) -> None:
    r = await sign_in(client, accounts.analyst)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app/experiments"
    cookies = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
    session = next(c for c in cookies if c.startswith("ca_session="))
    lowered = session.lower()
    assert "httponly" in lowered
    assert "samesite=lax" in lowered
    assert "path=/app" in lowered
    assert "secure" not in lowered  # served over http here
    page = await client.get("/app/experiments")
    assert page.status_code == 200
    assert "Experiments" in page.text
    assert accounts.analyst in page.text


async def test_wrong_password_and_no_session(client, accounts: Accounts) -> None:
    r = await sign_in(client, accounts.analyst, "wrong password entirely")
    assert r.status_code == 401
    assert "The email or password is wrong." in r.text
    r = await client.get("/app/experiments/anything", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/app/login?next=/app/experiments/anything"


async def test_a_post_without_the_csrf_field_is_refused(client, accounts: Accounts) -> None:
    await client.get("/app/login")
    r = await client.post("/app/login", data={"email": accounts.analyst, "password": "x"})
    assert r.status_code == 403
    assert "did not come from this app" in r.text


async def test_users_see_nothing(client, accounts: Accounts) -> None:
    assert (await sign_in(client, accounts.user)).status_code == 303
    for path in ("/app/experiments", "/app/analytics", "/app/exports"):
        r = await client.get(path)
        assert r.status_code == 403, path
        assert "for analysts and admins" in r.text


async def test_experiment_page_and_admin_pause(
    client, accounts: Accounts, conn: asyncpg.Connection, settings
) -> None:
    admin_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", accounts.admin)
    await create(client, bearer(settings, admin_id, "admin"))
    test_id, v = await variant_ids(conn, "checkout")
    await seed_arm(conn, test_id, v["control"], 1000, 100)
    await seed_arm(conn, test_id, v["green"], 1000, 130)
    await sign_in(client, accounts.admin)
    listing = await client.get("/app/experiments")
    assert 'class="chip' in listing.text
    assert "2,000" in listing.text
    page = await client.get("/app/experiments/checkout")
    assert page.status_code == 200, page.text
    assert "<svg" in page.text
    assert "+3.0 pp" in page.text
    confirm = await client.get("/app/experiments/checkout/status?to=paused")
    assert "Pause the experiment checkout?" in confirm.text
    done = await client.post(
        "/app/experiments/checkout/status",
        data={"to": "paused", "confirmed": "yes", "_csrf": csrf_of(confirm.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert await conn.fetchval("SELECT status FROM ab_tests WHERE name = 'checkout'") == "paused"


async def test_analysts_cannot_act(client, accounts: Accounts, conn: asyncpg.Connection, settings) -> None:
    admin_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", accounts.admin)
    await create(client, bearer(settings, admin_id, "admin"))
    await sign_in(client, accounts.analyst)
    page = await client.get("/app/experiments/checkout")
    assert "Change this experiment" not in page.text
    r = await client.post(
        "/app/experiments/checkout/status", data={"to": "paused", "_csrf": csrf_of(page.text)}
    )
    assert r.status_code == 403
    assert await conn.fetchval("SELECT status FROM ab_tests WHERE name = 'checkout'") == "active"


@pytest.mark.parametrize("path", ["/app/analytics", "/app/exports", "/app/analytics?granularity=hour"])
async def test_data_pages_render(client, accounts: Accounts, path: str) -> None:
    await sign_in(client, accounts.analyst)
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert "<svg" in r.text or "Start export" in r.text


async def test_unknown_experiment_is_a_404_page(client, accounts: Accounts) -> None:
    await sign_in(client, accounts.analyst)
    r = await client.get("/app/experiments/nope")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]


async def test_traffic_change_is_confirmed_then_applied(
    client, accounts: Accounts, conn: asyncpg.Connection, settings
) -> None:
    admin_id = await conn.fetchval("SELECT user_id FROM users WHERE email = $1", accounts.admin)
    await create(client, bearer(settings, admin_id, "admin"))
    await sign_in(client, accounts.admin)
    page = await client.get("/app/experiments/checkout")
    form = {"traffic.control": "30", "traffic.green": "70", "_csrf": csrf_of(page.text)}
    confirm = await client.post("/app/experiments/checkout/traffic", data=form)
    assert confirm.status_code == 200
    assert "Change the traffic of checkout to control 30 % / green 70 %?" in confirm.text
    assert await conn.fetchval("SELECT phase FROM ab_tests WHERE name = 'checkout'") == 1
    bad = await client.post(
        "/app/experiments/checkout/traffic", data={**form, "traffic.green": "60", "confirmed": "yes"}
    )
    assert bad.status_code == 422
    assert "text/html" in bad.headers["content-type"]
    done = await client.post(
        "/app/experiments/checkout/traffic", data={**form, "confirmed": "yes"}, follow_redirects=False
    )
    assert done.status_code == 303
    shares = await conn.fetch(
        """SELECT v.name, v.traffic_percentage FROM ab_test_variants v JOIN ab_tests t USING (test_id)
           WHERE t.name = 'checkout' ORDER BY v.name"""
    )
    assert [(r["name"], float(r["traffic_percentage"])) for r in shares] == [
        ("control", 30.0),
        ("green", 70.0),
    ]


async def test_an_expired_access_token_is_renewed_from_the_refresh_cookie(client, accounts: Accounts) -> None:
    await sign_in(client, accounts.analyst)
    refresh = client.cookies.get("ca_refresh")
    jar = next(c for c in client.cookies.jar if c.name == "ca_session")
    client.cookies.set("ca_session", "expired.or.forged", domain=jar.domain, path=jar.path)
    r = await client.get("/app/experiments?x=1", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/app/experiments?x=1"
    assert client.cookies.get("ca_refresh") != refresh  # rotated
    again = await client.get("/app/experiments?x=1")
    assert again.status_code == 200
    assert accounts.analyst in again.text


async def test_cookies_are_secure_over_https(settings, accounts: Accounts) -> None:
    from litestar.testing import AsyncTestClient

    from corp_astro.app import create_app

    async with AsyncTestClient(app=create_app(settings), base_url="https://testserver.local") as tls:
        r = await sign_in(tls, accounts.analyst)
    assert r.status_code == 303
    cookies = [v.lower() for k, v in r.headers.multi_items() if k == "set-cookie"]
    assert {c.split("=")[0] for c in cookies} == {"ca_session", "ca_refresh"}
    assert all("; secure" in c for c in cookies)


async def test_a_page_gives_a_missing_csrf_cookie(client, accounts: Accounts) -> None:
    await sign_in(client, accounts.analyst)
    client.cookies.delete("ca_csrf")
    r = await client.get("/app/exports")
    assert r.status_code == 200
    token = client.cookies.get("ca_csrf")
    assert token
    assert csrf_of(r.text) == token
