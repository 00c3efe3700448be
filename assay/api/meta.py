"""Public meta routes: health, version, OpenAPI document, API docs page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from assay import BUILD_PROFILE, __version__
from assay.api.http import CANONICAL_PREFIX, Router, json_response
from assay.engine import Engine


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
    )
    def version() -> str:
        return json_response({"version": __version__, "build_profile": BUILD_PROFILE})

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
        "Interactive API documentation (works offline)",
        "meta",
        auth="public",
        responses={200: None},
    )
    def docs() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        return DOCS_HTML.replace("{{SPEC}}", CANONICAL_PREFIX + "/openapi.json")


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>assay API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem">
<h1>assay API</h1>
<p>The OpenAPI document is at <a href="{{SPEC}}">{{SPEC}}</a>.</p>
<div id="ops">Loading…</div>
<script>
fetch("{{SPEC}}").then(r => r.json()).then(spec => {
  const rows = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      rows.push(`<tr><td><code>${method.toUpperCase()}</code></td><td><code>${path}</code></td><td>${op.summary || ""}</td></tr>`);
    }
  }
  document.getElementById("ops").innerHTML = `<table>${rows.join("")}</table>`;
});
</script></body></html>
"""
