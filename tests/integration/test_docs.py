"""The API documentation works offline: every script, style and icon the pages load is the app's own."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient


async def test_docs_pages_load_only_local_assets(client: AsyncTestClient[Any]) -> None:
    for page in ("/schema", "/schema/swagger"):
        r = await client.get(page)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert len(refs) >= 4, refs  # favicon, stylesheet, two scripts
        for ref in refs:
            assert ref.startswith("/schema/assets/"), ref
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.content
        assert "https://" not in r.text
        assert "http://" not in r.text


async def test_the_spec_and_unknown_doc_paths(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "Corp Astro analytics API"
    for path in ("/schema/nope", "/schema/assets/nope.js"):
        r = await client.get(path)
        assert r.status_code == 404
        assert r.json()["code"]
