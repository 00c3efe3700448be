"""Public meta routes: health, version, OpenAPI document, API docs page."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import bottle

from assay import BUILD_PROFILE, __version__, protocol
from assay.api.http import PREFIXES, Router, error_body, json_response
from assay.engine import Engine
from assay.errors import NotFound


def register(
    r: Router,
    engine: Engine,
    health_extra: Callable[[], dict[str, Any]] | None,
    openapi: Callable[[], dict[str, Any]],
) -> None:
    @r(
        "GET",
        "/health",
        "Liveness probe (does not touch the database)",
        "meta",
        auth="public",
        responses={200: "Health"},
        quick=True,
    )
    def health() -> str:
        body: dict[str, Any] = {
            "service": "assay-workflow",
            "status": "ok",
            "version": __version__,
            "backend": engine.store.dialect,
            "held_requests": engine.held_requests,
        }
        if health_extra is not None:
            body.update(health_extra())
        return json_response(body)

    @r(
        "GET",
        "/version",
        "Engine version and build profile",
        "meta",
        auth="public",
        responses={200: "Version"},
        quick=True,
    )
    def version() -> str:
        return json_response({"version": __version__, "build_profile": BUILD_PROFILE})

    @r(
        "GET",
        "/protocol",
        "The protocol's vocabulary: statuses, event types, SSE events, commands, policies, defaults",
        "meta",
        auth="public",
        responses={200: "Protocol"},
        description="Generated from assay/protocol.py; the dashboard reads its lists from here.",
        quick=True,
    )
    def protocol_json() -> str:
        bottle.response.set_header("Cache-Control", "no-cache")
        return json_response(protocol.as_json())

    @r(
        "GET",
        "/openapi.json",
        "This API as an OpenAPI 3.1 document",
        "meta",
        auth="public",
        responses={200: None},
    )
    def openapi_json() -> str:
        return json_response(openapi())

    @r(
        "GET",
        "/docs",
        "Interactive API documentation (Swagger UI, served locally: works offline)",
        "meta",
        auth="public",
        responses={200: None},
    )
    def docs() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        prefix = bottle.request.path.rsplit("/docs", 1)[0]
        return DOCS_HTML.replace("{{PREFIX}}", prefix).replace("{{VERSION}}", __version__)

    def docs_asset(name: str) -> Any:
        if name not in DOCS_ASSETS:
            return error_body(NotFound(f"not found: {name}"))
        data = resources.files("assay.docs_ui").joinpath(name).read_bytes()
        bottle.response.content_type = DOCS_ASSETS[name]
        bottle.response.set_header("Cache-Control", "public, max-age=86400")
        return data

    for prefix in PREFIXES:  # static files of the docs page: not API operations, so not in the spec
        r.app.route(prefix + "/docs/<name>", "GET", docs_asset)


DOCS_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
}

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>assay API {{VERSION}}</title>
<link rel="stylesheet" href="{{PREFIX}}/docs/swagger-ui.css?v={{VERSION}}">
<style>body { margin: 0 } .topbar { display: none }</style>
</head>
<body>
<div id="ui"></div>
<script src="{{PREFIX}}/docs/swagger-ui-bundle.js?v={{VERSION}}"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "{{PREFIX}}/openapi.json",
  dom_id: "#ui",
  deepLinking: true,
  persistAuthorization: true,
});
</script>
</body>
</html>
"""
