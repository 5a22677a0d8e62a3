"""The API documentation pages, served whole by the app: Swagger UI's assets come from a pip-installed
package (``swagger-ui-bundle``) under ``/schema/assets``, so ``/schema`` works with no network at all.

Litestar's render plugins load their scripts, styles and favicon from CDNs by default; every one of those
URLs is replaced here by the app's own copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import swagger_ui_bundle
from litestar import Request, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from kernel.openapi import Operation, complete

__all__ = ["ASSETS_PATH", "assets_router", "openapi_config"]

ASSETS_PATH = "/schema/assets"
_DESCRIPTION = (
    "Segment-compatible ingest, A/B experiments, rollups and Parquet exports. Users authenticate with a "
    "Bearer access token (`bearerAuth`), apps with their write key as the HTTP Basic username "
    "(`writeKey`). Every error is a JSON `Error` body `{code, message, details?}` (docs/errors.md); lists "
    "are `{items, next_cursor}`. The server layer answers 400 (unparseable request), 408 (too slow), "
    "429 (too many connections from one address), 431 (head over 64 KB) and 503 (at its connection "
    "limit, or the database is unreachable) on any route, with the same body."
)
_FAVICON = f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">'


@get("/{path:str}", include_in_schema=False, sync_to_thread=False)
def _schema_not_found() -> None:
    """Unknown paths under /schema: Litestar's own handler answers with an HTML page, not our JSON error."""
    raise NotFoundException("No such documentation page; see /schema or /schema/openapi.json.")


class _CompletedJson(JsonRenderPlugin):
    """``/schema/openapi.json``: Litestar's document completed by ``kernel.openapi`` (once, in place)."""

    def __init__(self, operations: Mapping[str, Operation]) -> None:
        super().__init__(path="/openapi.json")
        self.operations = operations

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(openapi_schema, request.app, self.operations))


class _CompletedSwagger(SwaggerRenderPlugin):
    """Swagger UI (it embeds the document) with its assets from the installed package."""

    def __init__(self, path: list[str], operations: Mapping[str, Operation]) -> None:
        super().__init__(
            path=path,
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=_FAVICON,
        )
        self.operations = operations

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(openapi_schema, request.app, self.operations))


def openapi_config(
    title: str, version: str, operations: Mapping[str, Operation] | None = None
) -> OpenAPIConfig:
    """The spec at ``/schema/openapi.json`` and Swagger UI at ``/schema`` (and ``/schema/swagger``);
    ``operations``: the domains' declarations (``kernel.openapi.Operation``) by ``"METHOD /path"``."""
    declared = operations or {}
    return OpenAPIConfig(
        title=title,
        version=version,
        description=_DESCRIPTION,
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=[_CompletedSwagger(["/", "/swagger"], declared), _CompletedJson(declared)],
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
