"""The HTTP connection loop (assay/httploop.py) over real sockets: waitress with assay's channel, as `assay
serve` builds it (assay.server.create_http_server), serving a small test app in this process.

Idle connections cost the loop nothing per turn (it asks only the channels that can have changed), and
nothing is lost for it: a task thread's late write, a delayed answer, a big answer, a held request's
hang-up, closes from either side, waitress's idle-connection timeout."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from assay.server import create_http_server
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 10.0  # seconds a socket read may block before the test fails (never reached when it works)


class App:
    """/hello: at once. /late: a first chunk, then the rest once the test says so (the task thread writes
    long after the loop last looked at the channel). /delay?S: the answer sent S seconds later, without the
    thread (the channel's delay_answer). /held: waits until the client hangs up. /big: 4 MB."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.held = threading.Event()
        self.hung_up = threading.Event()

    def __call__(self, environ, start_response):
        path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
        if path == "/late":
            start_response("200 OK", [("Content-Type", "text/plain")])  # chunked: no length

            def body():
                yield b"first;"
                self.go_on.wait(DEADLINE)
                yield b"second;done"

            return body()
        if path == "/delay":
            environ["waitress.client_disconnected"].__self__.delay_answer(float(query))
            return self._text(start_response, b"delayed")
        if path == "/held":
            self.held.set()
            gone = environ["waitress.client_disconnected"]
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                if gone():
                    self.hung_up.set()
                    break
                time.sleep(0.01)
            return self._text(start_response, b"nobody reads this")
        if path == "/big":
            return self._text(start_response, b"x" * (4 << 20))
        return self._text(start_response, b"hello")

    @staticmethod
    def _text(start_response, data: bytes):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
        return [data]


def run_server(app, **kw) -> tuple:
    """(server, thread): create_http_server(app, **kw) on 127.0.0.1, a free port, its loop turning in the
    thread (end it with stop()). Skips the test where waitress keeps its own loop (no epoll/poll)."""
    srv = create_http_server(app, host="127.0.0.1", port=0, **kw)
    if srv.channels is None:  # pragma: no cover - a platform without epoll/poll keeps waitress's loop
        pytest.skip("no epoll/poll here")
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    return srv, t


@pytest.fixture
def served():
    """(app, server, port): the loop turns in a thread until the test ends."""
    app = App()
    srv, t = run_server(app, threads=4, channel_timeout=300, connection_limit=1000)
    yield app, srv, srv.effective_port
    app.go_on.set()
    stop(srv, t)


def stop(srv, t: threading.Thread) -> None:
    srv.channels.stop()
    t.join(DEADLINE)
    assert not t.is_alive()
    srv.task_dispatcher.shutdown(timeout=2)
    srv.close()
    srv.channels.close_poller()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send(s: socket.socket, path: str, close: bool = False) -> None:
    extra = b"Connection: close\r\n" if close else b""
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")


def read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response (Content-Length or chunked), read with the socket's deadline."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv(s)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(h.split(b":")[1]) for h in lines if h.startswith(b"content-length:")), None)
    if length is not None:
        while len(rest) < length:
            rest += recv(s)
        return head, rest[:length]
    body = b""
    while True:  # chunked
        while b"\r\n" not in rest:
            rest += recv(s)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += recv(s)
        if size == 0:
            return head, body
        body, rest = body + rest[:size], rest[size + 2 :]


def recv(s: socket.socket) -> bytes:
    data = s.recv(1 << 16)  # raises socket.timeout after DEADLINE: the test fails, never hangs
    assert data, "the server closed the connection"
    return data


def get(s: socket.socket, path: str) -> bytes:
    send(s, path)
    head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def open_connections(served_map, port: int, n: int) -> list[socket.socket]:
    before = len(served_map)
    socks = [connect(port) for _ in range(n)]
    wait_until(lambda: len(served_map) >= before + n, what=f"{n} connections accepted")
    return socks


def test_idle_connections_cost_nothing_per_turn_while_requests_are_answered(served):
    app, srv, port = served
    channels = srv.channels
    idle = open_connections(channels, port, 200)
    try:
        for s in idle[:50]:  # some have been used once (keep-alive, between requests), some never
            assert get(s, "/hello") == b"hello"
        c = connect(port)
        assert get(c, "/hello") == b"hello"
        asked, turns = channels.asked, channels.turns
        for _ in range(20):
            assert get(c, "/hello") == b"hello"
        # waitress's own loop asks every open connection on every turn: 200+ per turn, several turns a
        # request. This one asks the listener, the trigger and the channels that moved.
        assert channels.turns > turns
        assert (channels.asked - asked) / (channels.turns - turns) < 10
        assert channels.asked - asked < 200
    finally:
        for s in idle:
            s.close()


def test_a_task_threads_late_write_is_delivered(served):
    app, srv, port = served
    base = len(srv.channels)
    others = open_connections(srv.channels, port, 20)
    s = connect(port)
    try:
        send(s, "/late")
        got = b""
        while b"first;" not in got:
            got += recv(s)
        app.go_on.set()  # the task thread writes the rest now, long after the loop last asked
        while not got.endswith(b"0\r\n\r\n"):
            got += recv(s)
        assert b"second;done" in got
        # waitress ends a chunked answer of a streamed body with a close: that too reaches the client
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
        wait_until(lambda: len(srv.channels) == base + 20, what="the closed channel to leave the map")
    finally:
        s.close()
        for o in others:
            o.close()


def test_a_delayed_answer_goes_out_after_its_delay(served):
    app, srv, port = served
    s = connect(port)
    try:
        t0 = time.monotonic()
        assert get(s, "/delay?0.3") == b"delayed"
        assert time.monotonic() - t0 >= 0.3  # never before (a lower bound: the delay is a floor)
        assert get(s, "/hello") == b"hello"
    finally:
        s.close()


def test_a_big_answer_is_sent_whole(served):
    app, srv, port = served
    s = connect(port)
    try:
        assert get(s, "/big") == b"x" * (4 << 20)  # many partial sends, finished by the loop
        assert get(s, "/hello") == b"hello"
    finally:
        s.close()


def test_a_held_requests_hang_up_is_noticed(served):
    app, srv, port = served
    s = connect(port)
    send(s, "/held")
    assert app.held.wait(DEADLINE)
    s.close()
    assert app.hung_up.wait(DEADLINE), "the held request did not notice its client left"
    wait_until(lambda: len(srv.channels._flags) <= 2, what="the channel to be dropped")


def test_connections_close_cleanly_from_either_side(served):
    app, srv, port = served
    channels = srv.channels
    base = len(channels)
    for _ in range(3):  # descriptor numbers are reused: registrations must follow
        socks = open_connections(channels, port, 30)
        for s in socks[:10]:  # the server closes (Connection: close)
            send(s, "/hello", close=True)
            head, body = read_response(s)
            assert body == b"hello"
            assert s.recv(10) == b""  # then EOF
        for s in socks:  # the client closes
            s.close()
        wait_until(lambda: len(channels) == base, what="every closed connection to leave the map")
        assert set(channels._flags) <= set(channels)  # no registration left for a closed descriptor
    c = connect(port)
    assert get(c, "/hello") == b"hello"
    c.close()


def test_waitress_closes_a_connection_idle_past_channel_timeout():
    app = App()
    srv, t = run_server(app, threads=2, channel_timeout=1, cleanup_interval=1)
    try:
        s = connect(srv.effective_port)
        assert get(s, "/hello") == b"hello"
        assert s.recv(10) == b""  # the server closed it: idle for channel_timeout (within DEADLINE)
        s.close()
    finally:
        stop(srv, t)


def test_requests_back_to_back_on_one_connection_are_all_answered(served):
    """Each request races the loop (the task thread ends it while the loop may be asking the channel):
    a wake-up lost there leaves the connection unanswered."""
    app, srv, port = served
    c = connect(port)
    try:
        for _ in range(1000):
            assert get(c, "/hello") == b"hello"
    finally:
        c.close()


def test_a_small_answer_leaves_in_one_send(served):
    """Head and body in one send: the client's first read returns the whole answer (waitress alone sends
    the head and the body apart, and a read between the two gets only the head)."""
    app, srv, port = served
    c = connect(port)
    try:
        for _ in range(50):
            send(c, "/hello")
            data = recv(c)
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nhello"), data
    finally:
        c.close()
