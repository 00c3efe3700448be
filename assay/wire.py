"""A lean HTTP/1.1 client connection for plain `http://`: what workers use to talk to the engine.

`http.client` parses response headers with the `email` package: in a Lua or Python worker that was
about a third of the process's CPU (py-spy, 1-activity workflows), and each request costs several
small writes. `WireConn` sends a request with one `sendall` and parses the status line and headers
itself. It keeps the connection alive, and it reads every body framing HTTP/1.1 allows
(Content-Length, chunked, until close), so it also serves scripts that call other servers.
HTTPS and event streams keep using `http.client`.

Errors are `http.client`'s: `RemoteDisconnected` when the server closed a kept-alive connection before
answering (the caller may retry once), `HTTPException` for a malformed answer, `OSError` for the socket.
"""

from __future__ import annotations

import http.client
import socket

MAX_HEAD = 65536  # bytes of status line + headers
_NO_BODY = (204, 304)


class WireConn:
    def __init__(self, host: str, port: int, timeout: float | None) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.timeout = timeout
        self._buf = b""
        self._host_header = host if port == 80 else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            self._host_header = f"[{host}]" if port == 80 else f"[{host}]:{port}"

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self._buf = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request and read its answer: (status, headers (lower-case names; repeated ones
        joined with ", "), body, whether the connection must be closed after it)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length"))
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)
        while True:
            status, version, rh = self._read_head()
            if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
                continue
            break
        conn_tokens = rh.get("connection", "").lower()
        close = "close" in conn_tokens or (version == "HTTP/1.0" and "keep-alive" not in conn_tokens)
        if method == "HEAD" or status in _NO_BODY:
            return status, rh, b"", close
        if "chunked" in rh.get("transfer-encoding", "").lower():
            return status, rh, self._read_chunked(), close
        length = rh.get("content-length")
        if length is not None:
            try:
                n = int(length.split(",")[0].strip())
            except ValueError:
                raise http.client.HTTPException(f"bad Content-Length {length!r}") from None
            if n < 0:
                raise http.client.HTTPException(f"bad Content-Length {length!r}")
            return status, rh, self._read_exact(n), close
        return status, rh, self._read_to_close(), True

    # -- reading ---------------------------------------------------------------------------------
    def _recv(self) -> bytes:
        assert self.sock is not None
        return self.sock.recv(65536)

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        buf = self._buf
        first = True
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD:
                raise http.client.HTTPException("response headers too long")
            chunk = self._recv()
            if not chunk:
                if first and not buf:
                    raise http.client.RemoteDisconnected("the server closed the connection without answering")
                raise http.client.IncompleteRead(buf)
            first = False
            buf += chunk
        head, self._buf = buf[:end], buf[end + 4 :]
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise http.client.BadStatusLine(lines[0])
        try:
            status = int(parts[1])
        except ValueError:
            raise http.client.BadStatusLine(lines[0]) from None
        rh: dict[str, str] = {}
        last = None
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and last is not None:  # an obsolete folded continuation line
                rh[last] = f"{rh[last]} {line.strip()}"
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            k, v = name.strip().lower(), value.strip()
            rh[k] = f"{rh[k]}, {v}" if k in rh else v
            last = k
        return status, parts[0], rh

    def _read_exact(self, n: int) -> bytes:
        buf = self._buf
        while len(buf) < n:
            chunk = self._recv()
            if not chunk:
                raise http.client.IncompleteRead(buf, n - len(buf))
            buf += chunk
        self._buf = buf[n:]
        return buf[:n]

    def _read_line(self) -> bytes:
        buf = self._buf
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                self._buf = buf[i + 2 :]
                return buf[:i]
            if len(buf) > MAX_HEAD:
                raise http.client.HTTPException("chunk header too long")
            chunk = self._recv()
            if not chunk:
                raise http.client.IncompleteRead(buf)
            buf += chunk
            self._buf = buf

    def _read_chunked(self) -> bytes:
        out: list[bytes] = []
        while True:
            line = self._read_line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise http.client.HTTPException(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(out)
            out.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise http.client.HTTPException("chunk not followed by CRLF")

    def _read_to_close(self) -> bytes:
        out = [self._buf]
        self._buf = b""
        while True:
            chunk = self._recv()
            if not chunk:
                return b"".join(out)
            out.append(chunk)
