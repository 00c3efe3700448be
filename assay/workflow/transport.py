"""The Python worker's HTTP transport: a keep-alive connection per thread to one engine; in-flight polls
can be aborted (a stopping worker returns fast). Plain http:// goes through assay/wire.py (a third of a
worker's CPU was http.client's header parsing); https:// through http.client."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from typing import Any

from assay.wire import WireConn

API = "/api/v1"


class Transport:
    """A keep-alive HTTP connection per thread to one engine; in-flight polls can be aborted."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0) -> None:
        p = urllib.parse.urlsplit(url)
        if p.scheme not in ("http", "https") or not p.hostname:
            raise ValueError(f"workflow.connect: not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.scheme, self.host = p.scheme, p.hostname
        self.port = p.port or (443 if p.scheme == "https" else 80)
        self.prefix = p.path.rstrip("/") + API
        self.api_key = api_key or None
        self.timeout = timeout
        self._local = threading.local()
        self._inflight: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.aborting = threading.Event()

    def _conn(self) -> http.client.HTTPConnection | WireConn:
        c = getattr(self._local, "conn", None)
        if c is None:
            if self.scheme == "https":
                c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
            else:
                c = WireConn(self.host, self.port, self.timeout)
            self._local.conn = c
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        abortable: bool = False,
    ) -> tuple[int, Any, bytes]:
        """One request: (status, parsed JSON or None, raw). Raises OSError/HTTPException when no answer
        came; returns status 0 when an abortable request was cut short by `abort()`."""
        headers = {"Accept": "application/json", "User-Agent": "assay-python-worker"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            headers["Content-Length"] = "0"
        for retry in (True, False):
            c = self._conn()
            try:
                if c.sock is None:
                    c.connect()
                c.sock.settimeout(timeout or self.timeout)
                sock = c.sock
                if abortable:
                    with self._lock:
                        if self.aborting.is_set():
                            return 0, None, b""
                        self._inflight.add(sock)
                try:
                    if isinstance(c, WireConn):
                        status, _, raw, will_close = c.request(method, self.prefix + path, data, headers)
                    else:
                        c.request(method, self.prefix + path, body=data, headers=headers)
                        resp = c.getresponse()
                        raw = resp.read()
                        status, will_close = resp.status, resp.will_close
                finally:
                    if abortable:
                        with self._lock:
                            self._inflight.discard(sock)
            except (OSError, http.client.HTTPException):
                self._drop()
                if abortable and self.aborting.is_set():
                    return 0, None, b""
                # a keep-alive connection the server closed meanwhile: one fresh try (not for a poll,
                # whose request may have claimed a task)
                if retry and not abortable:
                    continue
                raise
            if will_close:
                self._drop()
            value = None
            if raw:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = None
            return status, value, raw
        raise AssertionError("unreachable")  # pragma: no cover

    def abort(self) -> None:
        """Cut every in-flight abortable request (and refuse new ones) so a stopping worker returns fast."""
        with self._lock:
            self.aborting.set()
            for s in list(self._inflight):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
