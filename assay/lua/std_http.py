"""HTTP for Lua scripts: keep-alive connection reuse, redirects, TLS options, SSE streaming.

One ``HttpClient`` owns a small pool (one idle connection per scheme/host/port). A Lua state lives
in one thread, so a client is used by one thread at a time; the lock only guards the pool.
"""

from __future__ import annotations

import http.client
import logging
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from assay.lua.natives import LuaRaise, from_lua, is_table, native, raw, text, to_lua
from assay.wire import WireConn

log = logging.getLogger("assay.lua.http")

DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 10
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


Conn = http.client.HTTPConnection | WireConn
PoolKey = tuple[str, str, int, bool]  # scheme, host, port, over WireConn


class Aborted(Exception):
    """The request was aborted because the process is stopping."""


class Inflight:
    """Sockets of requests that may be aborted at once (long polls while a worker stops)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.stopping = threading.Event()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
        if self.stopping.is_set():
            self.abort_all()

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def abort_all(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


INFLIGHT = Inflight()


class Response:
    def __init__(self, status: int, body: bytes, headers: dict[str, str], url: str) -> None:
        self.status, self.body, self.headers, self.url = status, body, headers, url


class HttpClient:
    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        follow_redirects: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.ssl_context = ssl_context
        #: one idle connection per (scheme, host, port, wire): plain http:// without an event stream goes
        #: through assay/wire.py (WireConn), the rest through http.client
        self._pool: dict[PoolKey, Conn] = {}
        self._lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------------
    def _take(self, key: PoolKey, timeout: float) -> tuple[Conn, bool]:
        with self._lock:
            conn = self._pool.pop(key, None)
        if conn is not None and conn.sock is not None:
            try:  # a readable idle socket means the server closed it (or sent junk): drop it
                readable, _, _ = select.select([conn.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [True]
            if not readable:
                conn.timeout = timeout
                conn.sock.settimeout(timeout)
                return conn, True
            conn.close()
        scheme, host, port, wire = key
        if wire:
            return WireConn(host, port, timeout), False
        if scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx), False
        return http.client.HTTPConnection(host, port, timeout=timeout), False

    def _give_back(self, key: PoolKey, conn: Conn) -> None:
        with self._lock:
            old = self._pool.get(key)
            self._pool[key] = conn
        if old is not None and old is not conn:
            old.close()

    def close(self) -> None:
        with self._lock:
            conns, self._pool = list(self._pool.values()), {}
        for c in conns:
            c.close()

    # -- requests ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        on_event: Callable[[dict[str, str]], bool] | None = None,
        interruptible: bool = False,
    ) -> Response:
        timeout = self.timeout if timeout is None else timeout
        headers = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._once(method, url, body, headers, timeout, on_event, interruptible)
            if not self.follow_redirects or resp.status not in (301, 302, 303, 307, 308):
                return resp
            location = resp.headers.get("location")
            if not location:
                return resp
            url = urllib.parse.urljoin(url, location)
            if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = "GET", None
                headers = {
                    k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")
                }
        raise OSError(f"too many redirects (more than {MAX_REDIRECTS})")

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        on_event: Callable[[dict[str, str]], bool] | None,
        interruptible: bool,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r} (expected http:// or https://)")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port, scheme == "http" and on_event is None)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        hdrs = {"User-Agent": "assay-lua", "Accept-Encoding": "identity", **headers}
        for attempt in (1, 2):
            conn, reused = self._take(key, timeout)
            try:
                if conn.sock is None:
                    conn.connect()
                sock = conn.sock
                assert sock is not None
                if interruptible:
                    INFLIGHT.add(sock)
                try:
                    status, rh, data, close = _exchange(conn, method, target, body, hdrs, on_event)
                finally:
                    if interruptible:
                        INFLIGHT.discard(sock)
            except _RETRYABLE:
                conn.close()
                if interruptible and INFLIGHT.stopping.is_set():
                    raise Aborted("stopping") from None
                if reused and attempt == 1:
                    continue  # a keep-alive connection the server had already dropped
                raise
            except BaseException:
                conn.close()
                if interruptible and INFLIGHT.stopping.is_set():
                    raise Aborted("stopping") from None
                raise
            if close:
                conn.close()
            else:
                self._give_back(key, conn)
            return Response(status, data, rh, url)
        raise AssertionError("unreachable")


def _exchange(
    conn: Conn,
    method: str,
    target: str,
    body: bytes | None,
    hdrs: dict[str, str],
    on_event: Callable[[dict[str, str]], bool] | None,
) -> tuple[int, dict[str, str], bytes, bool]:
    """One request on `conn`: (status, headers by lower-case name, body, close the connection after)."""
    if isinstance(conn, WireConn):
        return conn.request(method, target, body, hdrs)
    conn.request(method, target, body=body, headers=hdrs)
    resp = conn.getresponse()
    rh: dict[str, str] = {}
    for k, v in resp.getheaders():
        k = k.lower()
        rh[k] = f"{rh[k]}, {v}" if k in rh else v
    if on_event is not None and rh.get("content-type", "").startswith("text/event-stream"):
        return resp.status, rh, _read_sse(resp, on_event), True
    return resp.status, rh, resp.read(), bool(resp.will_close)


def _read_sse(resp: http.client.HTTPResponse, on_event: Callable[[dict[str, str]], bool]) -> bytes:
    """Feed server-sent events to ``on_event`` until it returns True (close) or the stream ends."""
    event: dict[str, str] = {}
    data: list[str] = []
    while True:
        line = resp.readline()
        if not line:
            return b""
        s = line.decode("utf-8", "replace").rstrip("\r\n")
        if s == "":
            if data or event:
                ev = {"event": event.get("event", "message"), "data": "\n".join(data)}
                for k in ("id", "retry"):
                    if k in event:
                        ev[k] = event[k]
                event, data = {}, []
                if on_event(ev):
                    return b""
            continue
        if s.startswith(":"):
            continue
        field, _, value = s.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field in ("event", "id", "retry"):
            event[field] = value


def make_ssl_context(ca_cert_file: str | None, ca_cert: str | None) -> ssl.SSLContext | None:
    if not ca_cert_file and not ca_cert:
        return None
    ctx = ssl.create_default_context()
    if ca_cert_file:
        ctx.load_verify_locations(cafile=ca_cert_file)
    if ca_cert:
        ctx.load_verify_locations(cadata=ca_cert)
    return ctx


class HttpNatives:
    """Natives behind the Lua ``http`` table (the prelude does JSON bodies and argument shapes)."""

    def __init__(self, lua: Any) -> None:
        self.lua = lua
        self.default = HttpClient()

    @native("http.client")
    def new_client(self, opts: Any = None) -> HttpClient:
        o = from_lua(opts) if is_table(opts) else {}
        if not isinstance(o, dict):
            o = {}
        timeout = o.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise LuaRaise("timeout must be a positive number of seconds")
        ctx = make_ssl_context(o.get("ca_cert_file"), o.get("ca_cert"))
        return HttpClient(float(timeout), o.get("follow_redirects", True) is not False, ctx)

    @native("http")
    def request(
        self,
        client: Any = None,
        method: Any = None,
        url: Any = None,
        body: Any = None,
        opts: Any = None,
        on_event: Any = None,
    ) -> Any:
        c = client if isinstance(client, HttpClient) else self.default
        m = text(method).upper()
        u = text(url, "url")
        o = from_lua(opts) if is_table(opts) else {}
        hdrs = o.get("headers") if isinstance(o, dict) else None
        headers = {str(k): str(v) for k, v in hdrs.items()} if isinstance(hdrs, dict) else {}
        timeout = o.get("timeout") if isinstance(o, dict) else None
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise LuaRaise("timeout must be a positive number of seconds")
        cb = None
        if on_event is not None:

            def cb(ev: dict[str, str]) -> bool:
                r = on_event(to_lua(self.lua, ev))
                return isinstance(r, bytes) and r == b"close"

        data = raw(body) if body is not None else None
        try:
            resp = c.request(m, u, data, headers, timeout, cb)
        except (OSError, http.client.HTTPException, ValueError, ssl.SSLError) as e:
            raise LuaRaise(f"http.{m.lower()} failed: {describe_error(e)} ({u})", bare=True) from None
        return to_lua(self.lua, {"status": resp.status, "body": resp.body, "headers": resp.headers})


def describe_error(e: BaseException) -> str:
    if isinstance(e, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host: {e.strerror or e}"
    msg = str(e) or type(e).__name__
    return msg
