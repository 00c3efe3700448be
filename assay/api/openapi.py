"""The OpenAPI 3.1 document, generated from the route table: every route declares its summary, parameters,
body and response schemas next to its handler, so a route cannot exist undocumented."""

from __future__ import annotations

from typing import Any

from assay import __version__
from assay.api.http import CANONICAL_PREFIX, RouteSpec
from assay.api.schemas import SCHEMAS, ref

DESCRIPTION = """\
The assay workflow engine API.

Every path below is also served under the upstream-compatible alias `/api/v1/...`
(for example `/api/v1/workflows` is `/api/v1/engine/workflow/workflows`), with identical behaviour and auth.

Bodies are JSON. Where every field of a body is optional, `[]`, `{}`, `null`, an empty body and a missing
Content-Type all mean "no fields". Errors are `{"error": "<message>"}` with 400 (invalid input), 401
(unauthenticated), 404 (unknown resource), 409 (conflict: duplicate id, lease lost, invalid transition),
413 (body too large), 429 (too many failed logins) or 503 (server busy: retry after Retry-After).
"""


def _error_response(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}


def _operation(s: RouteSpec) -> dict[str, Any]:
    op_id = f"{s.method.lower()}_{s.path.strip('/')}"
    for a, b in (("/", "_"), ("{", ""), ("}", ""), ("-", "_"), (".", "_")):
        op_id = op_id.replace(a, b)
    op: dict[str, Any] = {"summary": s.summary, "tags": [s.tag], "operationId": op_id}
    if s.description:
        op["description"] = s.description
    params: list[dict[str, Any]] = []
    for name in _path_params(s.path):
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name == "id" and s.path.startswith(("/activities", "/tasks")):
            schema = {"type": "integer", "minimum": 0}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, typ, desc in s.query:
        qs: dict[str, Any] = {"type": typ}
        if typ == "integer":
            qs["minimum"] = 0
        params.append({"name": name, "in": "query", "required": False, "schema": qs, "description": desc})
    if params:
        op["parameters"] = params
    if s.body:
        content: dict[str, Any] = {"schema": ref(s.body)}
        if s.example is not None:
            content["example"] = s.example
        op["requestBody"] = {"required": s.body_required, "content": {"application/json": content}}
    responses: dict[str, Any] = {}
    for status, schema in sorted((s.responses or {200: None}).items()):
        if status >= 400:
            responses[str(status)] = _error_response(_STATUS_TEXT.get(status, "Error"))
            continue
        resp: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "OK")}
        if schema:
            resp["content"] = {"application/json": {"schema": ref(schema)}}
        elif s.stream:
            resp["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        responses[str(status)] = resp
    if s.body or s.query or _path_params(s.path):
        responses.setdefault("400", _error_response(_STATUS_TEXT[400]))
    if s.body:
        responses.setdefault("413", _error_response(_STATUS_TEXT[413]))
    if s.auth != "public":
        responses.setdefault("401", _error_response(_STATUS_TEXT[401]))
        responses.setdefault("429", _error_response(_STATUS_TEXT[429]))
        op["security"] = [{"apiKey": []}, {"oidc": []}] + ([{}] if s.auth == "bootstrap" else [])
    responses["default"] = _error_response("Any other error (same shape)")
    op["responses"] = responses
    return op


_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Invalid input",
    401: "Unauthenticated",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    429: "Too many failed attempts",
    503: "Busy; retry later",
}


def build_spec(specs: list[RouteSpec]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for s in specs:
        paths.setdefault(CANONICAL_PREFIX + s.path, {})[s.method.lower()] = _operation(s)
    used = {name for s in specs for name in [s.body, *(s.responses or {}).values()] if name}
    missing = sorted(n for n in used if n not in SCHEMAS)
    if missing:
        raise RuntimeError(f"routes name undefined schemas: {', '.join(missing)}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assay-workflow API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted({s.tag for s in specs})],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (assay_...) from `assay serve --generate-api-key`.",
                },
                "oidc": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT from the configured OIDC issuer (--auth-issuer).",
                },
            },
        },
    }


def _path_params(path: str) -> list[str]:
    return [p[1:-1] for p in path.split("/") if p.startswith("{") and p.endswith("}")]
