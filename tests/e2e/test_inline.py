"""Quick requests served on the connection loop's thread (assay.server.create_http_server(inline=...)),
over real sockets: which thread serves what, pipelining, answers bigger than waitress's high watermark, a
quick request while a slow one is held, the `assay serve` wiring (RouteSpec.quick, ASSAY_INLINE_REQUESTS,
JWTs that may make the server call its issuer)."""

from __future__ import annotations

import re
import threading

import pytest

from assay.api.http import PREFIXES, Router, RouteSpec
from tests.e2e.test_httploop import DEADLINE, connect, get, read_response, recv, run_server, send, stop

pytestmark = pytest.mark.e2e


class App:
    """Records the thread that served each path. /quick/...: at once. /big: 3 MB. /held: waits for the
    test's go_on."""

    def __init__(self) -> None:
        self.threads: dict[str, set[int]] = {}
        self.go_on = threading.Event()
        self.held = threading.Event()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.threads.setdefault(path, set()).add(threading.get_ident())
        data = path.encode()
        if path.endswith("/big"):
            data = b"y" * (3 << 20)
        elif path == "/held":
            self.held.set()
            self.go_on.wait(DEADLINE)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
        return [data]


@pytest.fixture
def served():
    """(app, server, port, loop thread): paths under /quick are served inline."""
    app = App()
    asked: list[tuple[str, str]] = []

    def inline(method: str, path: str, headers: dict) -> bool:
        asked.append((method, path))
        return path.startswith("/quick")

    srv, t = run_server(
        app,
        inline=inline,
        threads=4,
        connection_limit=100,
        outbuf_high_watermark=64 * 1024,  # far below /big: served inline, it must not wait for itself
    )
    app.asked = asked
    yield app, srv, srv.effective_port, t
    app.go_on.set()
    stop(srv, t)


def test_quick_requests_run_on_the_loop_thread_and_others_on_task_threads(served):
    app, srv, port, loop = served
    c = connect(port)
    try:
        for _ in range(20):
            assert get(c, "/quick/a") == b"/quick/a"
            assert get(c, "/slow") == b"/slow"
    finally:
        c.close()
    assert app.threads["/quick/a"] == {loop.ident}
    assert loop.ident not in app.threads["/slow"]
    assert ("GET", "/slow") in app.asked


def test_pipelined_quick_and_slow_requests_are_answered_in_order(served):
    app, srv, port, loop = served
    c = connect(port)
    try:
        paths = ["/quick/1", "/slow", "/quick/2", "/quick/3", "/slow2"] * 10
        c.sendall(b"".join(b"GET " + p.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n" for p in paths))
        stream = b""  # several answers may arrive in one read
        for p in paths:
            while b"\r\n\r\n" not in stream:
                stream += recv(c)
            head, _, stream = stream.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(stream) < length:
                stream += recv(c)
            body, stream = stream[:length], stream[length:]
            assert body == p.encode()
        assert stream == b""
    finally:
        c.close()
    assert loop.ident in app.threads["/quick/1"]  # the first of a batch; one after a slow one: its thread


def test_pipelined_quick_requests_all_run_on_the_loop_thread(served):
    app, srv, port, loop = served
    c = connect(port)
    try:
        c.sendall(b"".join(b"GET /quick/p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(30)))
        stream = b""
        while stream.count(b"HTTP/1.1 200") < 30 or not stream.endswith(b"/quick/p29"):
            stream += recv(c)
        assert [int(x) for x in re.findall(rb"\r\n\r\n/quick/p(\d+)", stream)] == list(range(30))
    finally:
        c.close()
    assert {t for i in range(30) for t in app.threads[f"/quick/p{i}"]} == {loop.ident}


def test_an_answer_above_the_high_watermark_served_inline_is_sent_whole(served):
    """A task thread waits for the loop to drain a huge answer; served on the loop, that wait would never
    end. The answer is buffered and the loop sends it; the connection keeps working after it."""
    app, srv, port, loop = served
    c = connect(port)
    try:
        for _ in range(3):
            send(c, "/quick/big")
            head, body = read_response(c)
            assert head.startswith(b"HTTP/1.1 200") and body == b"y" * (3 << 20)
            assert get(c, "/quick/after") == b"/quick/after"
    finally:
        c.close()
    assert app.threads["/quick/big"] == {loop.ident}


def test_a_held_slow_request_does_not_stop_quick_ones(served):
    app, srv, port, loop = served
    held, c = connect(port), connect(port)
    try:
        send(held, "/held")
        assert app.held.wait(DEADLINE)
        for i in range(50):
            assert get(c, f"/quick/{i}") == f"/quick/{i}".encode()
        app.go_on.set()
        head, body = read_response(held)
        assert body == b"/held"
    finally:
        held.close()
        c.close()


def test_without_inline_every_request_goes_to_a_task_thread():
    app = App()
    srv, t = run_server(app, threads=2, connection_limit=10)
    try:
        c = connect(srv.effective_port)
        try:
            assert get(c, "/quick/x") == b"/quick/x"
        finally:
            c.close()
    finally:
        stop(srv, t)
    assert t.ident not in app.threads["/quick/x"]


# --- which routes are quick ------------------------------------------------------------------------


def _router(*specs: tuple[str, str, bool]) -> Router:
    import bottle

    r = Router(bottle.Bottle(), 1024)
    for method, path, quick in specs:
        r.add(RouteSpec(method, path, lambda **kw: "", "s", "t", quick=quick))
    return r


def test_is_quick_matches_declared_routes_under_every_prefix_and_nothing_else():
    r = _router(
        ("GET", "/workflows/{id}", True), ("GET", "/workflows", False), ("POST", "/tasks/{id}/done", True)
    )
    for prefix in PREFIXES:
        assert r.is_quick("GET", prefix + "/workflows/wf-1")
        assert r.is_quick("POST", prefix + "/tasks/42/done")
        assert not r.is_quick("GET", prefix + "/workflows")  # declared, not quick
        assert not r.is_quick("POST", prefix + "/workflows/wf-1")  # the method matters
        assert not r.is_quick("GET", prefix + "/workflows/wf-1/events")  # the whole path must match
        assert not r.is_quick("POST", prefix + "/tasks/4/2/done")  # a parameter is one segment
    assert not r.is_quick("GET", "/workflows/wf-1")  # no prefix
    r.add(RouteSpec("GET", "/later", lambda: "", "s", "t", quick=True))  # a route added later counts
    assert r.is_quick("GET", PREFIXES[1] + "/later")


def test_the_engines_hot_routes_are_quick_and_waiting_ones_are_not(tmp_path):
    """The server's table: what a workflow's requests use is quick; a long-poll or a stream never is."""
    from assay.api import make_app
    from assay.engine import Engine
    from assay.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/q.db")
    try:
        router = make_app(Engine(store)).assay_router
        p = PREFIXES[1]
        for method, path in [
            ("POST", "/workflows"),
            ("GET", "/workflows/w1"),
            ("POST", "/workflow-tasks/w1/commands"),
            ("POST", "/tasks/7/complete"),
            ("POST", "/tasks/7/fail"),
            ("POST", "/workers/heartbeat"),
            ("GET", "/health"),
        ]:
            assert router.is_quick(method, p + path), path
        for method, path in [
            ("POST", "/workflow-tasks/poll"),
            ("POST", "/tasks/poll"),
            ("POST", "/poll"),
            ("GET", "/events/stream"),
            ("GET", "/workflows"),
            ("POST", "/workflows/w1/reset"),
        ]:
            assert not router.is_quick(method, p + path), path
    finally:
        store.close()


# --- `assay serve` ---------------------------------------------------------------------------------


def _serve_and_see_threads(backend: str, inline: bool | None) -> tuple[dict[str, int], int]:
    """Run `assay serve` (in-process) on `backend`; GET a describe and POST a poll; return which thread
    served each path, and the thread that turned the loop."""
    import http.client
    import json

    from assay.config import Settings
    from assay.server import Server

    server = Server(Settings(port=0, backend=backend, inline_requests=inline, threads=4))
    served: dict[str, int] = {}
    app = server.app

    def recording(environ, start_response):
        served[environ["PATH_INFO"]] = threading.get_ident()
        return app(environ, start_response)

    recording.assay_router = app.assay_router  # what the server asks (Router.is_quick)
    server.app = recording
    t = threading.Thread(target=server.serve_forever, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        c.request("GET", "/api/v1/workflows/nope")
        r = c.getresponse()
        assert r.status == 404 and "error" in json.loads(r.read())
        c.request(
            "POST", "/api/v1/tasks/poll", body=json.dumps({"queue": "q", "worker_id": "w", "wait_secs": 0})
        )
        r = c.getresponse()
        r.read()
        assert r.status in (200, 204, 404)
        c.close()
    finally:
        server._channels.stop()  # the loop ends; serve_forever shuts the engine down
        t.join(DEADLINE)
    assert not t.is_alive()
    assert t.ident is not None
    return served, t.ident


@pytest.mark.parametrize("inline", [None, True, False])
def test_serve_runs_describe_on_the_loop_thread_unless_turned_off(tmp_path, inline):
    """ASSAY_INLINE_REQUESTS (Settings.inline_requests): on (the default with SQLite), a describe runs on
    the thread turning the loop; off, on a task thread. A long-poll is never inline."""
    served, loop = _serve_and_see_threads(f"sqlite:///{tmp_path}/s.db", inline)
    assert (served["/api/v1/workflows/nope"] == loop) is (inline is not False)
    assert served["/api/v1/tasks/poll"] != loop


@pytest.mark.postgres
@pytest.mark.parametrize("inline", [None, True])
def test_on_postgres_inline_is_off_unless_asked_for(inline):
    """A Postgres request waits on the network: blocking the loop meanwhile would serialize the engine."""
    from tests import pg

    if not pg.available():
        pytest.skip("no Postgres here")
    served, loop = _serve_and_see_threads(pg.fresh_database(), inline)
    assert (served["/api/v1/workflows/nope"] == loop) is bool(inline)


def test_a_jwt_that_may_need_the_issuer_is_never_served_inline(tmp_path):
    from assay.auth import AuthConfig, Authenticator
    from assay.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/a.db")
    try:
        jws = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
        with_issuer = Authenticator(store, AuthConfig(api_keys=True, issuer="http://127.0.0.1:9/realm"))
        assert with_issuer.may_call_out(jws)
        assert not with_issuer.may_call_out("Bearer ak_0123456789abcdef")  # an API key: a local lookup
        assert not with_issuer.may_call_out("")
        keys_only = Authenticator(store, AuthConfig(api_keys=True))
        assert not keys_only.may_call_out(jws)  # refused locally: JWTs are not enabled
    finally:
        store.close()


def test_a_sigterm_landing_inside_an_inline_request_lets_it_finish(tmp_path):
    """Signals run on the main thread, which turns the loop and so serves quick requests: the handler must
    not raise into the request it interrupts. The request's answer goes out, then the engine stops."""
    import http.client
    import os
    import signal

    from assay.config import Settings
    from assay.server import Server

    server = Server(Settings(port=0, backend=f"sqlite:///{tmp_path}/sig.db", threads=4))
    app = server.app

    def signalled(environ, start_response):
        if environ["PATH_INFO"].endswith("/workflows/boom"):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs on this thread before the next line
            for _ in range(1000):  # bytecodes for the pending handler to run in the middle of the request
                pass
        return app(environ, start_response)

    signalled.assay_router = app.assay_router
    server.app = signalled
    answers: list[int] = []

    def client() -> None:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        c.request("GET", "/api/v1/workflows/boom")
        answers.append(c.getresponse().status)
        c.close()

    t = threading.Thread(target=client, daemon=True)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        t.start()
        server.serve_forever(install_signals=True)  # returns once the signal has stopped the loop
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    t.join(DEADLINE)
    assert answers == [404]  # answered (no such workflow), not cut off
