"""assay/wire.py against a scripted raw-socket server: every body framing, interim answers, keep-alive
reuse, and the errors a caller relies on (RemoteDisconnected on a dropped idle connection)."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from assay.wire import MAX_HEAD, WireConn


class Scripted:
    """Accepts one connection; for each request read from it, sends the next scripted answer (bytes),
    or closes the connection when the answer is None; closes it after the last answer. Records the raw
    requests."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.srv.accept()
        buf = b""
        with conn:
            for answer in self.answers:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                if answer is None:
                    return
                conn.sendall(answer)

    def close(self) -> None:
        self.srv.close()
        self.thread.join(5)


def conn_to(server: Scripted) -> WireConn:
    return WireConn("127.0.0.1", server.port, 5.0)


def test_content_length_keep_alive_and_the_request_it_sends():
    s = Scripted([
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhi",
    ])  # fmt: skip
    c = conn_to(s)
    try:
        assert c.request("POST", "/api/v1/x?y=1", b'{"a":1}', {"Content-Type": "application/json"}) == (
            200,
            {"content-type": "application/json", "content-length": "11"},
            b'{"ok":true}',
            False,
        )
        sock = c.sock
        status, headers, body, close = c.request("GET", "/two", None, {"X-Key": "k"})
        assert (status, body, close, headers["set-cookie"]) == (201, b"hi", False, "a=1, b=2")
        assert c.sock is sock  # the same connection, kept alive
        first, second = s.requests
        assert first.startswith(b"POST /api/v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nContent-Length: 7\r\n" in first and first.endswith(b'\r\n\r\n{"a":1}')
        assert second.startswith(b"GET /two HTTP/1.1\r\n") and b"Content-Length" not in second
        assert b"\r\nX-Key: k\r\n" in second
    finally:
        c.close()
        s.close()


def test_chunked_with_extensions_and_trailers_then_an_interim_answer_and_folded_headers():
    s = Scripted([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 3\r\n\r\nabc",
    ])  # fmt: skip
    c = conn_to(s)
    try:
        assert c.request("GET", "/c", None, {})[2] == b"hello, world"
        status, headers, body, close = c.request("POST", "/i", b"", {})
        assert (status, headers["x-long"], body, close) == (200, "a b", b"abc", False)
    finally:
        c.close()
        s.close()


@pytest.mark.parametrize(
    ("answer", "method", "body", "close"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "GET", b"until the end", True),  # no length: read to close
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", b"ok", True),  # 1.0: closes by default
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "GET", b"ok", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "GET", b"ok", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE", b"", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", b"", False),
    ],
)
def test_body_framings(answer, method, body, close):
    s = Scripted([answer])
    c = conn_to(s)
    try:
        got = c.request(method, "/", None, {})
        assert (got[2], got[3]) == (body, close)
    finally:
        c.close()
        s.close()


def test_a_dropped_idle_connection_is_remote_disconnected_and_a_new_one_works():
    s = Scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", None])
    c = conn_to(s)
    try:
        assert c.request("GET", "/", None, {})[2] == b"1"
        with pytest.raises(http.client.RemoteDisconnected):
            c.request("GET", "/", None, {})  # the server closed instead of answering
    finally:
        c.close()
        s.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SMTP ready\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 abc OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10), http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nContent-Le", http.client.IncompleteRead),
    ],
)
def test_malformed_answers_raise_http_errors(answer, error):
    s = Scripted([answer])  # then the server closes the connection
    c = conn_to(s)
    try:
        with pytest.raises(error):
            c.request("GET", "/", None, {})
    finally:
        c.close()
        s.close()
