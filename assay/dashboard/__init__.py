"""The built-in operator dashboard at /workflow/: static HTML + ES modules + CSS, no build step.

Assets are read through importlib.resources (so the dashboard also works from a zipapp) and cached once
per process. Every asset URL carries ``?v=<asset version>`` (the process start time), and relative
module imports inside the JavaScript are rewritten to carry it too, so a redeploy invalidates browser
caches without a build step.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

import bottle

from assay.dashboard.whitelabel import Whitelabel

__all__ = ["register", "Whitelabel", "Dashboard"]

BASE = "/workflow"
VIEWS = ("workflows", "schedules", "workers", "queues", "metrics", "settings")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
CACHE_CONTROL = "no-cache"
_IMPORT_RE = re.compile(r"""((?:\bfrom|\bimport)\s*\(?\s*["'])(\.{1,2}/[^"'?#]+\.js)(["'])""")
_PLACEHOLDER_RE = re.compile(r"\{\{([A-Z_]+)\}\}")


def _static_root() -> Any:
    return resources.files(__name__).joinpath("static")


def _walk(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node.iterdir():
        rel = prefix + child.name
        if child.is_dir():
            out.update(_walk(child, rel + "/"))
        else:
            out[rel] = child
    return out


class Dashboard:
    """Renders the index and serves the assets of one process (branding fixed at construction)."""

    def __init__(self, whitelabel: Whitelabel, asset_version: str) -> None:
        self.whitelabel = whitelabel
        self.asset_version = asset_version
        self._files = _walk(_static_root())
        self._cache: dict[str, tuple[bytes, str]] = {}

    # --- content ----------------------------------------------------------------------------------
    def asset_names(self) -> list[str]:
        return sorted(n for n in self._files if n != "index.html")

    def _load(self, name: str) -> tuple[bytes, str] | None:
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        node = self._files.get(name)
        if node is None:
            return None
        data = node.read_bytes()
        if name.endswith(".js"):
            v = self.asset_version
            text = _IMPORT_RE.sub(
                lambda m: f"{m.group(1)}{m.group(2)}?v={v}{m.group(3)}", data.decode("utf-8")
            )
            data = text.encode("utf-8")
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        self._cache[name] = (data, etag)
        return data, etag

    def index(self) -> tuple[bytes, str]:
        hit = self._cache.get("\0index")
        if hit is not None:
            return hit
        node = self._files["index.html"]
        template = node.read_text(encoding="utf-8")
        values = self.whitelabel.fragments(self.asset_version)
        html = _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)
        data = html.encode("utf-8")
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        self._cache["\0index"] = (data, etag)
        return data, etag

    # --- responses --------------------------------------------------------------------------------
    @staticmethod
    def _send(data: bytes, etag: str, content_type: str) -> bytes | bottle.HTTPResponse:
        headers = {
            "Content-Type": content_type,
            "Cache-Control": CACHE_CONTROL,
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }
        inm = bottle.request.headers.get("If-None-Match")
        if inm and etag in [t.strip() for t in inm.split(",")]:
            return bottle.HTTPResponse(status=304, headers=headers)
        headers["Content-Length"] = str(len(data))
        return bottle.HTTPResponse(body=data, status=200, headers=headers)

    def serve_index(self) -> bottle.HTTPResponse | bytes:
        data, etag = self.index()
        resp = self._send(data, etag, CONTENT_TYPES[".html"])
        if isinstance(resp, bottle.HTTPResponse):
            resp.set_header("Referrer-Policy", "same-origin")
        return resp

    def serve_asset(self, name: str) -> bottle.HTTPResponse | bytes:
        ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if name == "index.html" or ext not in CONTENT_TYPES:
            return self.not_found()
        loaded = self._load(name)
        if loaded is None:
            return self.not_found()
        return self._send(loaded[0], loaded[1], CONTENT_TYPES[ext])

    @staticmethod
    def not_found() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(
            body=b"not found",
            status=404,
            headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": CACHE_CONTROL},
        )

    @staticmethod
    def redirect() -> bottle.HTTPResponse:
        qs = bottle.request.query_string
        location = BASE + "/" + ("?" + qs if qs else "")
        return bottle.HTTPResponse(
            status=308, headers={"Location": location, "Cache-Control": CACHE_CONTROL, "Content-Length": "0"}
        )


def register(
    app: bottle.Bottle,
    engine: Any = None,
    settings: Any = None,
    *,
    environ: Mapping[str, str] | None = None,
    asset_version: str | None = None,
) -> Dashboard:
    """Add the dashboard routes to `app`. Branding is read from `environ` (default os.environ) once."""
    dash = Dashboard(Whitelabel.from_env(environ), asset_version or str(int(time.time())))

    def route(path: str, fn: Any) -> None:
        app.route(path, "GET", fn, skip=True)

    route("/", dash.redirect)
    route(BASE, dash.redirect)
    route(BASE + "/", dash.serve_index)
    for view in VIEWS:
        route(f"{BASE}/{view}", dash.serve_index)
        route(f"{BASE}/{view}/", dash.serve_index)
    route(BASE + "/workflows/<rest:path>", lambda rest: dash.serve_index())
    route("/favicon.ico", lambda: dash.serve_asset("favicon.svg"))
    route(BASE + "/<name:path>", dash.serve_asset)
    app.dashboard = dash  # type: ignore[attr-defined]
    return dash
