"""The OpenAPI document, generated from the route table (a route cannot exist undocumented)."""

from __future__ import annotations

from typing import Any

from assay import __version__
from assay.api.http import CANONICAL_PREFIX, RouteSpec

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
    "additionalProperties": True,
}


def build_spec(specs: list[RouteSpec]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR}
    for s in specs:
        op: dict[str, Any] = {
            "summary": s.summary,
            "tags": [s.tag],
            "operationId": f"{s.method.lower()}_{s.path.strip('/').replace('/', '_')}".replace("{", "")
            .replace("}", "")
            .replace("-", "_"),
        }
        if s.description:
            op["description"] = s.description
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _path_params(s.path)
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
            for n, t, d in s.query
        ]
        if params:
            op["parameters"] = params
        if s.body:
            schemas.setdefault(s.body, {"type": "object", "additionalProperties": True})
            content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{s.body}"}}
            if s.example is not None:
                content["example"] = s.example
            op["requestBody"] = {"required": s.body_required, "content": {"application/json": content}}
        responses: dict[str, Any] = {}
        for status, schema in (s.responses or {200: None}).items():
            resp: dict[str, Any] = {"description": "OK" if status < 300 else "Error"}
            if schema:
                schemas.setdefault(schema, {})
                resp["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
            elif s.stream and status == 200:
                resp["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
            responses[str(status)] = resp
        op["responses"] = responses
        if s.auth != "public":
            op["security"] = [{"bearerAuth": []}]
        paths.setdefault(CANONICAL_PREFIX + s.path, {})[s.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assay-workflow API",
            "version": __version__,
            "description": "Every path is also served under /api/v1 (the upstream-compatible alias).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key or OIDC JWT"}
            },
        },
    }


def _path_params(path: str) -> list[str]:
    out = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            out.append(part[1:-1])
    return out
