"""The Lua `http` global against a tiny HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assay.lua import ScriptError


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set = set()
    requests: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        Handler.connections.add(self.client_address)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Handler.requests.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/echo"):
            self._send(
                200,
                json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "ctype": self.headers.get("Content-Type"),
                        "x": self.headers.get("X-Test"),
                        "body": body.decode(),
                    }
                ).encode(),
                extra={"X-Multi": "a"},
            )
        elif self.path == "/missing":
            self._send(404, b'{"error":"nope"}')
        elif self.path == "/redirect":
            self._send(302, b"", extra={"Location": "/echo/after"})
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late")
        elif self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i in range(1, 100):
                try:
                    self.wfile.write(f'event: tick\nid: {i}\ndata: {{"n": {i}}}\n\n'.encode())
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.01)
            self.close_connection = True
        else:
            self._send(500, b"unexpected")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture
def server():
    Handler.connections = set()
    Handler.requests = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_methods_bodies_and_response_shape(lua, server):
    r = lua(f"""
      local u = {server!r}
      local g = http.get(u .. '/echo/get?q=1', {{ headers = {{ ['X-Test'] = 'yes' }} }})
      local p = http.post(u .. '/echo/post', {{ a = 1, list = {{1, 2}} }})
      local s = http.put(u .. '/echo/put', 'raw text')
      local pa = http.patch(u .. '/echo/patch', {{ z = true }}, {{ headers = {{ ['content-type'] = 'application/merge-patch+json' }} }})
      local d = http.delete(u .. '/echo/del')
      OUT = {{ g.status, json.parse(g.body), g.headers['content-type'], g.headers['x-multi'],
               json.parse(p.body), json.parse(s.body), json.parse(pa.body), json.parse(d.body).method }}
    """)
    out = r.get("OUT")
    assert out[0] == 200
    assert out[1] == {"method": "GET", "path": "/echo/get?q=1", "x": "yes", "body": ""}
    assert out[2] == "application/json" and out[3] == "a"
    assert out[4]["ctype"] == "application/json" and json.loads(out[4]["body"]) == {"a": 1, "list": [1, 2]}
    assert out[5]["body"] == "raw text" and "ctype" not in out[5]
    assert out[6]["ctype"] == "application/merge-patch+json" and out[6]["body"] == '{"z":true}'
    assert out[7] == "DELETE"


def test_non_2xx_does_not_raise(lua, server):
    r = lua(f"local r = http.get({server!r} .. '/missing'); OUT = {{ r.status, json.parse(r.body).error }}")
    assert r.get("OUT") == [404, "nope"]


def test_transport_errors_raise_with_position(lua):
    with pytest.raises(ScriptError) as e:
        lua("local x = 1\nlocal r = http.get('http://127.0.0.1:1/x')")
    assert e.value.message == "(command line):2: http.get failed: connection refused (http://127.0.0.1:1/x)"
    r = lua("OUT = { pcall(http.post, 'http://127.0.0.1:1/', {}) }")
    assert r.get("OUT") == [False, "http.post failed: connection refused (http://127.0.0.1:1/)"]
    with pytest.raises(ScriptError, match="http.get: url must be a string"):
        lua("http.get(42)")
    with pytest.raises(ScriptError, match="unsupported URL"):
        lua("http.get('ftp://example.invalid/')")


def test_keep_alive_reuses_one_connection(lua, server):
    r = lua(f"""
      local n = 0
      for i = 1, 8 do if http.get({server!r} .. '/echo/' .. i).status == 200 then n = n + 1 end end
      local c = http.client({{ timeout = 5 }})
      for i = 1, 4 do c:get({server!r} .. '/echo/c' .. i) end
      OUT = n
    """)
    assert r.get("OUT") == 8
    assert len(Handler.requests) == 12
    assert len(Handler.connections) == 2  # one for the default client, one for the custom client


def test_client_timeout_and_call_styles(lua, server):
    with pytest.raises(ScriptError) as e:
        lua(f"local c = http.client({{ timeout = 0.2 }}); c.get({server!r} .. '/slow')")
    assert "http.get failed: timed out" in e.value.message
    r = lua(f"""
      local c = http.client({{ timeout = 5 }})
      OUT = {{ c.get({server!r} .. '/echo/dot').status, c:post({server!r} .. '/echo/colon', {{ k = 1 }}).status,
               http.get({server!r} .. '/slow', {{ timeout = 3 }}).body }}
    """)
    assert r.get("OUT") == [200, 200, "late"]
    with pytest.raises(ScriptError, match="timeout must be a positive number"):
        lua("http.client({ timeout = -1 })")


def test_redirects(lua, server):
    r = lua(f"""
      local a = http.get({server!r} .. '/redirect')
      local b = http.client({{ follow_redirects = false }}).get({server!r} .. '/redirect')
      OUT = {{ a.status, json.parse(a.body).path, b.status, b.headers.location }}
    """)
    assert r.get("OUT") == [200, "/echo/after", 302, "/echo/after"]


def test_server_sent_events(lua, server):
    r = lua(f"""
      local seen = {{}}
      local resp = http.get({server!r} .. '/sse', {{ on_event = function(ev)
        seen[#seen + 1] = ev.event .. ':' .. ev.id .. ':' .. json.parse(ev.data).n
        if #seen == 3 then return 'close' end
      end }})
      OUT = {{ resp.status, seen }}
    """)
    assert r.get("OUT") == [200, ["tick:1:1", "tick:2:2", "tick:3:3"]]
