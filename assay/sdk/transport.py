"""Stdlib-only HTTP for the client SDK: JSON requests, Bearer auth, error mapping, streaming.

`http.client` is used directly (no proxies, no redirects): an engine is addressed by its URL and
nothing else gets between. Each call opens its own connection, so a Transport is thread-safe.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from typing import Any

from assay import __version__
from assay.config import ClientSettings, declared
from assay.sdk.errors import EngineUnreachable, ProtocolError, error_from_response

API_PREFIX = "/api/v1"
DEFAULT_URL: str = declared(ClientSettings)["engine_url"].default  # ASSAY_ENGINE_URL's default
USER_AGENT = f"assay-sdk/{__version__}"


def api_base(engine_url: str) -> tuple[str, str, int, str]:
    """Split an engine URL into (scheme, host, port, path prefix ending in /api/v1).

    A URL that already ends in `/api/v1` (or `/api/v1/engine/workflow`) is used as given.
    """
    url = (engine_url or DEFAULT_URL).strip()
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported engine URL scheme {parts.scheme!r} (use http or https)")
    if not parts.hostname:
        raise ValueError(f"engine URL has no host: {engine_url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as e:
        raise ValueError(f"bad port in engine URL {engine_url!r}") from e
    path = parts.path.rstrip("/")
    if not (path.endswith(API_PREFIX) or path.endswith(API_PREFIX + "/engine/workflow")):
        path += API_PREFIX
    return scheme, parts.hostname, port, path


def encode_query(query: dict[str, Any] | None) -> str:
    if not query:
        return ""
    items = [(k, v) for k, v in query.items() if v is not None]
    if not items:
        return ""
    norm = []
    for k, v in items:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, dict | list):
            v = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        norm.append((k, str(v)))
    return "?" + urllib.parse.urlencode(norm, quote_via=urllib.parse.quote)


class _NoBody:
    pass


NO_BODY: Any = _NoBody()


class Transport:
    """One engine endpoint: base URL, credentials and timeout."""

    def __init__(
        self, engine_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.engine_url = (engine_url or DEFAULT_URL).rstrip("/")
        self.scheme, self.host, self.port, self.prefix = api_base(self.engine_url)
        self.api_key = api_key or None
        self.timeout = timeout
        self._last = threading.local()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": USER_AGENT}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _unreachable(self, exc: BaseException, timeout: float | None) -> EngineUnreachable:
        if isinstance(exc, TimeoutError | socket.timeout):
            cause = f"timed out after {timeout:g}s" if timeout else "timed out"
        elif isinstance(exc, ConnectionRefusedError):
            cause = "connection refused"
        elif isinstance(exc, socket.gaierror):
            cause = f"cannot resolve host {self.host!r}"
        else:
            cause = str(exc) or type(exc).__name__
        return EngineUnreachable(f"engine unreachable at {self.engine_url}: {cause}")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = NO_BODY,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the parsed JSON answer (None for an empty body).

        Raises an `assay.errors` class for non-2xx answers and EngineUnreachable when no answer came.
        """
        timeout = self.timeout if timeout is None else timeout
        headers = self._headers()
        data = None
        if body is not NO_BODY:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        conn = self._connection(timeout)
        try:
            conn.request(method, self.prefix + path + encode_query(query), body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise self._unreachable(e, timeout) from None
        finally:
            conn.close()
        ctype = resp.getheader("Content-Type", "") or ""
        self._last.headers = resp.headers
        if not 200 <= resp.status < 300:
            raise error_from_response(resp.status, resp.reason, raw, ctype)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ProtocolError(
                f"{method} {path}: expected JSON from the engine, got {raw[:80].decode('utf-8', 'replace')!r}"
            ) from None

    def last_header(self, name: str) -> str | None:
        """A header of the last answer this thread received (e.g. X-Next-Cursor of a list page)."""
        headers = getattr(self._last, "headers", None)
        return None if headers is None else headers.get(name)

    def open_stream(
        self, path: str, *, query: dict[str, Any] | None = None, connect_timeout: float | None = None
    ) -> tuple[http.client.HTTPResponse, socket.socket | None]:
        """Open a streaming GET (SSE). Returns (response, raw socket) once the headers arrived.

        The socket is handed back so another thread can shut it down to unblock a pending read.
        """
        timeout = self.timeout if connect_timeout is None else connect_timeout
        conn = self._connection(timeout)
        try:
            conn.connect()
            sock = conn.sock
            conn.request(
                "GET",
                self.prefix + path + encode_query(query),
                headers={**self._headers("text/event-stream"), "Cache-Control": "no-cache"},
            )
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self._unreachable(e, timeout) from None
        if resp.status != 200:
            raw = resp.read()
            conn.close()
            raise error_from_response(resp.status, resp.reason, raw, resp.getheader("Content-Type", "") or "")
        if sock is not None:
            sock.settimeout(None)  # a stream is idle between events; keep-alives arrive on their own
        return resp, sock
