"""The HTTP API: make_app(engine, settings) -> a WSGI app (bottle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from assay.api import admin, events, meta, metrics, schedules, tasks, workflows
from assay.api.http import Router, dumps
from assay.api.openapi import build_spec
from assay.auth import Authenticator
from assay.auth import register_routes as register_auth_routes
from assay.config import Settings
from assay.engine import Engine


def make_app(
    engine: Engine,
    settings: Settings | None = None,
    *,
    health_extra: Callable[[], dict[str, Any]] | None = None,
    auth: Authenticator | None = None,
    extra: list[Callable[[bottle.Bottle, Router], None]] | None = None,
) -> bottle.Bottle:
    settings = settings or engine.settings
    app = bottle.Bottle()
    app.config["catchall"] = False
    app.config["json.enable"] = False
    router = Router(app, settings.max_body_bytes, auth.guard if auth is not None else None)
    app.assay_router = router  # the server asks it which requests are quick (Router.is_quick)
    workflows.register(router, engine)
    tasks.register(router, engine)
    schedules.register(router, engine)
    admin.register(router, engine)
    events.register(router, engine)
    metrics.register(router, engine)
    register_auth_routes(router, auth, engine.now)
    spec_cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not spec_cache:
            spec_cache.update(build_spec(router.specs))
        return spec_cache

    meta.register(router, engine, health_extra, openapi)
    for hook in extra or []:
        hook(app, router)

    def default_error(res: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        status = res.status_code
        msg = {404: "not found: no such route", 405: "method not allowed"}.get(
            status, res.body or res.status_line
        )
        return dumps(
            {
                "error": f"{msg}: {bottle.request.method} {bottle.request.path}"
                if status in (404, 405)
                else str(msg)
            }
        )

    app.default_error_handler = default_error
    app.router_specs = router.specs  # type: ignore[attr-defined]
    return app
