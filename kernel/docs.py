"""The API documentation pages, served whole by the app: Swagger UI's assets come from a pip-installed
package (``swagger-ui-bundle``) under ``/schema/assets``, so ``/schema`` works with no network at all.

Litestar's render plugins load their scripts, styles and favicon from CDNs by default; every one of those
URLs is replaced here by the app's own copy.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS_PATH", "assets_router", "openapi_config"]

ASSETS_PATH = "/schema/assets"
_FAVICON = f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">'


@get("/{path:str}", include_in_schema=False, sync_to_thread=False)
def _schema_not_found() -> None:
    """Unknown paths under /schema: Litestar's own handler answers with an HTML page, not our JSON error."""
    raise NotFoundException("No such documentation page; see /schema or /schema/openapi.json.")


def _swagger(path: str | list[str]) -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        path=path,
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=_FAVICON,
    )


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    """The spec at ``/schema/openapi.json`` and Swagger UI at ``/schema`` (and ``/schema/swagger``)."""
    return OpenAPIConfig(
        title=title,
        version=version,
        path="/schema",
        render_plugins=[_swagger(["/", "/swagger"])],
        openapi_router=Router("/schema", route_handlers=[_schema_not_found], include_in_schema=False),
    )


def assets_router() -> Any:
    """Swagger UI's files from the installed package (immutable per version: cacheable for a day)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui_bundle.swagger_ui_path],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86_400, public=True),
    )
