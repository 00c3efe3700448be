"""Request/response plumbing: lenient JSON bodies, query parsing, one JSON error shape, the route table."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bottle

from assay.errors import AssayError, BadRequest, PayloadTooLarge

log = logging.getLogger("assay.api")

PREFIXES = ("/api/v1/engine/workflow", "/api/v1")
CANONICAL_PREFIX = PREFIXES[0]


@dataclass
class RouteSpec:
    """One API route, declared next to its handler: the OpenAPI document is generated from these."""

    method: str
    path: str  # relative to the prefix, OpenAPI style: /workflows/{id}
    handler: Callable[..., Any]
    summary: str
    tag: str
    auth: str = "auth"  # public | auth | bootstrap
    body: str | None = None  # schema name of the request body
    body_required: bool = False
    responses: dict[int, str | None] = field(default_factory=dict)  # status -> schema name (None = empty)
    query: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, description)
    description: str = ""
    example: Any = None
    stream: bool = False
    #: answers without waiting on anything but the database (no long-poll, no stream, no remote call, bounded
    #: work): the server may run it on its connection loop's thread instead of handing it to a task thread
    quick: bool = False


class Router:
    """Registers each route under both prefixes; `guard(spec)` (auth) runs before non-public handlers."""

    def __init__(
        self, app: bottle.Bottle, max_body: int, guard: Callable[[RouteSpec], None] | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.guard = guard
        self.specs: list[RouteSpec] = []
        self._quick: dict[str, re.Pattern[str]] | None = None

    def add(self, spec: RouteSpec) -> None:
        self.specs.append(spec)
        self._quick = None
        bottle_path = spec.path.replace("{", "<").replace("}", ">")
        guard = self.guard if spec.auth != "public" else None
        for prefix in PREFIXES:
            self.app.route(prefix + bottle_path, spec.method, wrap(spec, guard), name=None, skip=[])

    def __call__(self, method: str, path: str, summary: str, tag: str, **kw: Any) -> Callable:
        def deco(fn: Callable) -> Callable:
            self.add(RouteSpec(method=method, path=path, handler=fn, summary=summary, tag=tag, **kw))
            return fn

        return deco

    def is_quick(self, method: str, path: str) -> bool:
        """Is `method path` (a raw request path, no query) a route declared quick?"""
        table = self._quick
        if table is None:
            table = self._quick = quick_table(self.specs)
        pattern = table.get(method)
        return pattern is not None and pattern.fullmatch(path) is not None


def quick_table(specs: list[RouteSpec]) -> dict[str, re.Pattern[str]]:
    """method -> one pattern matching every quick route's path under every prefix."""
    alts: dict[str, list[str]] = {}
    for spec in specs:
        if not spec.quick:
            continue
        parts = re.split(r"\{[^}]+\}", spec.path)
        body = "[^/]+".join(re.escape(p) for p in parts)
        for prefix in PREFIXES:
            alts.setdefault(spec.method, []).append(re.escape(prefix) + body)
    return {m: re.compile("|".join(f"(?:{a})" for a in sorted(set(v)))) for m, v in alts.items()}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


#: environ key of a request served by `assay serve`: a function(secs) that sends this request's answer
#: that much later without keeping its thread (server.py); absent in-process (tests, embedding)
DELAY_ANSWER = "assay.delay_answer"


def json_response(obj: Any, status: int = 200) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    return dumps(obj)


def empty(status: int = 200) -> str:
    bottle.response.status = status
    bottle.response.set_header("Content-Length", "0")
    return ""


def error_body(err: AssayError) -> str:
    bottle.response.status = err.status
    bottle.response.content_type = "application/json"
    if err.status == 401:
        bottle.response.set_header("WWW-Authenticate", "Bearer")
    body = err.to_json()
    if err.status in (429, 503):
        bottle.response.set_header("Retry-After", str(body.pop("retry_after", 5)))
    return dumps(body)


def wrap(spec: RouteSpec, guard: Callable[[RouteSpec], None] | None) -> Callable[..., Any]:
    handler = spec.handler

    def wrapped(**kw: Any) -> Any:
        try:
            if guard is not None:
                guard(spec)
            if any("\x00" in v for v in kw.values()) or "%00" in bottle.request.query_string:
                raise BadRequest("the URL must not contain NUL characters")
            return handler(**kw)  # (transient store errors are retried inside the engine)
        except AssayError as e:
            return error_body(e)
        except bottle.HTTPResponse:
            raise
        except Exception:
            rid = secrets.token_hex(6)
            log.exception(
                "unhandled error in %s %s (request id %s)", bottle.request.method, bottle.request.path, rid
            )
            bottle.response.status = 500
            bottle.response.content_type = "application/json"
            return dumps({"error": "internal server error", "request_id": rid})

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


def read_body(max_body: int) -> Any:
    """The JSON body, leniently: no body (or whitespace) -> None; any Content-Type accepted."""
    req = bottle.request
    length = req.content_length
    if length is not None and length > max_body:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {max_body}", limit=max_body)
    if "assay.raw_body" in req.environ:  # read once: a second read_body() sees the same body
        raw = req.environ["assay.raw_body"]
    else:
        stream = req.environ.get("wsgi.input")
        if stream is None:
            return None
        raw = stream.read(max_body + 1) if length in (None, -1) else stream.read(length)
        req.environ["assay.raw_body"] = raw
    if len(raw) > max_body:
        raise PayloadTooLarge(f"request body exceeds the limit of {max_body} bytes", limit=max_body)
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8") from None
    return loads_strict(text, "JSON body")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text} is out of range")
    return v


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def loads_strict(text: str, what: str) -> Any:
    """Standard JSON only: no NaN/Infinity, no out-of-range numbers, no unpaired surrogates, bounded
    nesting. Anything else is a 400 (it could not be stored or sent back as valid JSON)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        if "\\u" in text:  # an escaped lone surrogate cannot be encoded as UTF-8
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        if "\\u0000" in text and _has_nul(value):
            raise ValueError("strings must not contain NUL (\\u0000)")
    except RecursionError:
        raise BadRequest(f"invalid {what}: nested too deeply") from None
    except UnicodeEncodeError:
        raise BadRequest(f"invalid {what}: unpaired UTF-16 surrogate in a string") from None
    except ValueError as e:
        raise BadRequest(f"invalid {what}: {e}") from None
    return value


def q_str(name: str, default: str | None = None) -> str | None:
    v = bottle.request.query.getunicode(name)
    return default if v is None or v == "" else v


def q_int(name: str, default: int, *, min_value: int = 0, max_value: int = 10_000) -> int:
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter '{name}' must be an integer, got {raw!r}") from None
    if v < min_value or v > max_value:
        raise BadRequest(f"query parameter '{name}' must be between {min_value} and {max_value}")
    return v


def q_bool(name: str) -> bool | None:
    """true/false (also 1/0, yes/no); absent or empty -> None."""
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return None
    v = raw.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter '{name}' must be true or false, got {raw!r}")


def q_json_object(name: str) -> dict[str, Any] | None:
    raw = bottle.request.query.getunicode(name)
    if raw is None or raw == "":
        return None
    v = loads_strict(raw, f"query parameter '{name}'")
    if not isinstance(v, dict):
        raise BadRequest(f"query parameter '{name}' must be a JSON object")
    return v


def path_int(value: str, what: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise BadRequest(f"{what} must be an integer, got {value!r}") from None
    if v < 0 or v > 2**62:
        raise BadRequest(f"{what} out of range")
    return v
