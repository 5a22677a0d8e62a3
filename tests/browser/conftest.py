"""Browser tests of the web app: a real ``corp-astro serve`` and Debian's headless Chromium via Playwright.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright's own browser download is
never used. Without it the tests skip with the reason, unless ``CORP_ASTRO_REQUIRE_BROWSER=1`` (CI sets
it in ``.ci/run``), where a missing browser fails them. Every page's requests are logged and must stay
on 127.0.0.1. Screenshots go to ``.artifacts/browser/`` (gitignored).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.integration.webapp.conftest import PASSWORD, make_account
from tests.support import ROOT, LiveServer

CHROMIUM = Path(os.environ.get("CORP_ASTRO_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / ".artifacts" / "browser"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
LOCAL_HOSTS = {"127.0.0.1"}


def _unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser_reason() -> None:
    reason = _unavailable()
    if reason is None:
        return
    if os.environ.get("CORP_ASTRO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CORP_ASTRO_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def browser(browser_reason: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the module (starting one costs seconds); each test empties the tables first
    (``clean_db``, through ``conn`` and ``visit``). Exports go under a temporary data dir."""
    data = tmp_path_factory.mktemp("browser-data")
    with LiveServer(database_url, env={"CORP_ASTRO_DATA_DIR": str(data)}) as live:
        yield live


class Visit:
    """A browser context on the live server that records every request's host."""

    def __init__(self, context: Any, page: Any, server: LiveServer) -> None:
        self.context = context
        self.page = page
        self.server = server
        self.hosts: list[str] = []
        page.on("request", lambda request: self.hosts.append(urlsplit(request.url).hostname or ""))

    def url(self, path: str) -> str:
        return self.server.base_url + path

    async def sign_in(self, email: str, password: str = PASSWORD) -> None:
        await self.page.goto(self.url("/app/login"))
        await self.page.get_by_label("Email").fill(email)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url("**/app/experiments")

    async def axe_violations(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page."""
        await self.page.add_script_tag(content=AXE.read_text())
        found: list[dict[str, Any]] = await self.page.evaluate(
            "async () => (await axe.run(document)).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target)}))"
        )
        return [v for v in found if v["impact"] in ("serious", "critical")]

    async def screenshots(self, name: str) -> list[Path]:
        """Full-page screenshots at 360 px and 1440 px wide (test artefacts)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        paths = []
        for width in (360, 1440):
            await self.page.set_viewport_size({"width": width, "height": 900})
            path = ARTIFACTS / f"{name}-{width}.png"
            await self.page.screenshot(path=str(path), full_page=True)
            paths.append(path)
        await self.page.set_viewport_size({"width": 1280, "height": 900})
        return paths


@pytest.fixture
async def visit(browser: Any, server: LiveServer, clean_db: str) -> AsyncIterator[Visit]:
    # A viewer far from UTC, so that local times differ from the server's UTC text.
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        timezone_id="America/New_York",
        locale="en-US",
    )
    page = await context.new_page()
    v = Visit(context, page, server)
    yield v
    await context.close()
    # Nothing the pages load may come from another host (no CDN, no fonts, no analytics).
    assert set(v.hosts) <= LOCAL_HOSTS, sorted(set(v.hosts) - LOCAL_HOSTS)


@pytest.fixture
async def people(conn: asyncpg.Connection) -> dict[str, str]:
    return {role: await make_account(conn, role) for role in ("admin", "analyst")}


async def api_token(server: LiveServer, email: str) -> dict[str, str]:
    """A Bearer header from the API's own login."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}
