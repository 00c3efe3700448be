"""Idle workers (#17 goal 3): a long-poll the server cannot hold is told when to come back (retry_after);
an idle held poll opens no write transaction and shares its store look with the polls of its queue;
the reserve and the thread pool adapt to what is configured; a client that ignores retry_after is
answered later without a thread (the server's channel), so it cannot spin either."""

from __future__ import annotations

import json
import math
import socket
from contextlib import contextmanager
from http.client import HTTPConnection

import pytest

from assay.api import make_app
from assay.api.http import DELAY_ANSWER
from assay.config import load_settings
from assay.engine import Engine
from assay.engine.dispatch import RECHECK_SECS
from tests.helpers import http, start_engine, wait_until
from tests.wsgi import Client


def full_settings(**kw):
    """Settings of an engine that can hold no long-poll (every thread is in the reserve)."""
    base = {"backend": "sqlite::memory:", "threads": 4, "reserve_threads": 4}
    return load_settings({**base, **kw}, environ={})


@pytest.fixture
def full(store, clock):
    """(engine, client, delays): an engine at its hold ceiling; `delays` records what the app asked the
    server to delay (the DELAY_ANSWER hook `assay serve` puts in each request's environ)."""
    engine = Engine(store, clock=clock, settings=full_settings())
    app = make_app(engine)
    delays: list[float] = []

    def with_hook(environ, start_response):
        environ[DELAY_ANSWER] = delays.append
        return app(environ, start_response)

    yield engine, Client(with_hook), delays
    engine.notifier.close()


def register(engine) -> str:
    return engine.register_worker(identity="idle", queue="q", namespace="main", activities=["a"])


ROUTES = [
    # (path, extra body, what an upstream client gets when nothing is there)
    ("/tasks/poll", {}, {"task": None}),
    ("/workflow-tasks/poll", {}, None),
    ("/poll", {}, {"kind": None, "task": None}),
    ("/tasks/poll", {"max_tasks": 5}, {"tasks": []}),
    ("/workflow-tasks/poll", {"max_tasks": 5}, {"tasks": []}),
    ("/poll", {"max_tasks": 5}, {"tasks": []}),
]
IDS = ["activity", "workflow", "any", "activity-batch", "workflow-batch", "any-batch"]


@pytest.mark.parametrize("path,extra,upstream", ROUTES, ids=IDS)
def test_an_opted_in_poll_the_server_cannot_hold_gets_retry_after_at_once(full, path, extra, upstream):
    engine, client, delays = full
    wid = register(engine)
    r = client.post(path, {"queue": "q", "worker_id": wid, "wait_secs": 8, "retry_after": True, **extra})
    assert r.status == 200
    body = r.json
    secs = body.pop("retry_after")
    assert isinstance(secs, float) and 1.0 <= secs <= 8.0  # about its own wait: 0.5x-1x, at least 1 s
    assert body == (upstream or {})  # the empty answer's own fields, and no task
    assert r.headers["Retry-After"] == str(math.ceil(secs))
    assert delays == []  # it waits by itself: answered at once
    matches_spec(client, path, {**(upstream or {}), "retry_after": secs})


def matches_spec(client, path, value):
    """The answer validates against the route's documented 200 schema (OpenAPI), which names the field."""
    import jsonschema

    spec = client.get("/openapi.json").json
    op = next(v for p, v in spec["paths"].items() if p.endswith(path))
    schema = op["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(
        value, {**schema, "components": spec["components"]}, cls=jsonschema.Draft202012Validator
    )
    named = schema["$ref"].rsplit("/", 1)[1]
    documented = {n: json.dumps(spec["components"]["schemas"][n]) for n in (named, "RetryLater", "TaskBatch")}
    assert all("retry_after" in text or "RetryLater" in text for text in documented.values()), documented


@pytest.mark.parametrize("path,extra,upstream", ROUTES, ids=IDS)
def test_a_poll_that_did_not_opt_in_keeps_its_body_and_is_answered_later(full, path, extra, upstream):
    engine, client, delays = full
    wid = register(engine)
    r = client.post(path, {"queue": "q", "worker_id": wid, "wait_secs": 8, **extra})
    assert (r.status, r.json) == (200, upstream)  # byte-for-byte the shape upstream clients know
    assert len(delays) == 1 and 1.0 <= delays[0] <= 8.0  # ... but not before it would have come back
    assert r.headers["Retry-After"] == str(math.ceil(delays[0]))


@pytest.mark.parametrize("path,extra,upstream", ROUTES, ids=IDS)
def test_a_poll_without_wait_is_unchanged_even_at_the_ceiling(full, path, extra, upstream):
    engine, client, delays = full
    wid = register(engine)
    r = client.post(path, {"queue": "q", "worker_id": wid, "retry_after": True, **extra})
    assert (r.status, r.json, delays) == (200, upstream, [])
    assert "Retry-After" not in r.headers


def test_a_poll_with_work_ready_claims_it_even_at_the_ceiling(full):
    from tests.engine.support import start

    engine, client, delays = full
    wid = register(engine)
    start(engine, "wf-ready", queue="q")
    r = client.post(
        "/workflow-tasks/poll", {"queue": "q", "worker_id": wid, "wait_secs": 8, "retry_after": True}
    )
    assert r.status == 200 and r.json["workflow_id"] == "wf-ready" and "retry_after" not in r.json
    assert delays == []


@pytest.mark.parametrize("bad", ["yes", 1, {"a": 1}])
def test_retry_after_must_be_a_boolean(full, bad):
    engine, client, _ = full
    r = client.post(
        "/poll", {"queue": "q", "worker_id": register(engine), "wait_secs": 1, "retry_after": bad}
    )
    assert r.status == 400 and "retry_after" in r.json["error"]


# --- an idle held poll: no write transaction, one shared look per queue ---------------------------------
class StoreSpy:
    """Counts the store's write and read transactions."""

    def __init__(self, store, monkeypatch) -> None:
        self.writes = 0
        self.reads = 0
        real_tx, real_read = store.tx, store.read

        @contextmanager
        def tx(*a, **kw):
            self.writes += 1
            with real_tx(*a, **kw) as t:
                yield t

        @contextmanager
        def read(*a, **kw):
            self.reads += 1
            with real_read(*a, **kw) as t:
                yield t

        monkeypatch.setattr(store, "tx", tx)
        monkeypatch.setattr(store, "read", read)


def test_an_idle_held_poll_reads_only_and_shares_one_look_a_second(engine, clock, monkeypatch):
    """The notifier's timed wake-ups are driven by hand (no wall clock): 5 quiet turns within a second
    cost no store access at all; a turn after RECHECK_SECS looks (a read); the deadline ends the poll.
    Never a write transaction."""
    wid = register(engine)
    spy = StoreSpy(engine.store, monkeypatch)
    real_wait = engine.notifier.wait
    turns: list[float] = []

    def quiet_turn(since, timeout, *a, **kw):
        turns.append(timeout)
        if len(turns) == 6:
            clock.advance(RECHECK_SECS + 0.1)  # the safety look is due
        elif len(turns) == 7:
            clock.advance(60)  # past the poll's deadline
        return real_wait(since, 0.0, *a, **kw)  # nothing moved: a timed-out wait

    monkeypatch.setattr(engine.notifier, "wait", quiet_turn)
    got = engine.poll_tasks("q", wid, 30.0, gone=lambda: False)
    assert list(got) == [] and got.retry_after is None
    assert len(turns) == 7
    assert spy.writes == 0
    assert spy.reads == 3  # on arrival, the due safety look, the last look at the deadline


def test_a_held_poll_woken_by_work_claims_it_in_a_write_transaction(engine, clock, monkeypatch):
    """The other side of the rule: a write transaction happens exactly when there is work."""
    from tests.engine.support import start

    wid = register(engine)
    spy = StoreSpy(engine.store, monkeypatch)
    real_wait = engine.notifier.wait
    started = []

    def work_arrives(since, timeout, *a, **kw):
        if not started:
            started.append(start(engine, "wf-x", queue="q"))  # another thread's start: a write
        return real_wait(since, 0.0, *a, **kw)

    monkeypatch.setattr(engine.notifier, "wait", work_arrives)
    got = engine.poll_tasks("q", wid, 30.0, workflows=True, activities=False)
    assert [(k, t["id"]) for k, t in got] == [("workflow_task", "wf-x")]
    assert spy.writes == 2  # the start, and the claim


# --- the reserve and the pool adapt ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "threads,reserve,expected",
    [(64, None, 8), (16, None, 4), (200, None, 25), (2, None, 1), (64, 0, 0), (64, 20, 20)],
)
def test_the_reserve_follows_the_thread_count_unless_set(threads, reserve, expected):
    s = load_settings(
        {"backend": "sqlite::memory:", "threads": threads, "reserve_threads": reserve}, environ={}
    )
    assert s.reserve == expected


def test_the_thread_ceiling_defaults_to_room_for_a_thousand_polls():
    def ceiling(**kw):
        return load_settings({"backend": "sqlite::memory:", **kw}, environ={}).thread_ceiling

    assert ceiling() == 1024
    assert ceiling(threads=100) == 1600
    assert ceiling(threads=64, max_threads=200) == 200
    assert ceiling(threads=64, max_threads=10) == 64  # never below the pool it starts with


def test_holds_grow_the_pool_up_to_the_ceiling_then_say_no(store, clock):
    engine = Engine(store, clock=clock, settings=full_settings(threads=8, reserve_threads=2, max_threads=20))
    sizes: list[int] = []
    engine.core.grow_pool = sizes.append
    took = 0
    while engine.try_hold("poll"):
        took += 1
        assert took <= 100
    assert took == 18  # 20 threads minus the reserve
    assert sizes == [16, 20]  # grown by at least 8 at a time, capped at the ceiling
    engine.release_hold()
    assert engine.try_hold("poll")  # a freed place is taken again without growing
    assert sizes == [16, 20]
    engine.notifier.close()


def test_the_pool_shrinks_back_once_the_crowd_has_gone(store, clock):
    from assay.background import POOL_SHRINK_SECS, PoolLoop, default_loops

    engine = Engine(store, clock=clock, settings=full_settings(threads=8, reserve_threads=2, max_threads=200))
    sizes: list[int] = []
    engine.core.grow_pool = sizes.append
    assert any(isinstance(loop, PoolLoop) for loop in default_loops(engine))  # a resizable pool: looked after
    for _ in range(100):
        assert engine.try_hold("poll")
    grown = engine.core.pool_threads
    assert grown >= 102 and sizes[-1] == grown
    loop = PoolLoop(engine)
    assert loop.tick(clock.now()) == clock.now() + POOL_SHRINK_SECS  # not due yet: nothing happens
    assert engine.core.pool_threads == grown
    for _ in range(95):
        engine.release_hold()
    clock.advance(POOL_SHRINK_SECS)
    loop.tick(clock.now())  # 100 were held since the last look: the pool stays
    assert engine.core.pool_threads == grown
    clock.advance(POOL_SHRINK_SECS)
    loop.tick(clock.now())  # at most 5 held since: down to 15 (5 held + reserve 2 + 8)
    assert engine.core.pool_threads == 15 and sizes[-1] == 15
    for _ in range(5):
        engine.release_hold()
    clock.advance(POOL_SHRINK_SECS)
    loop.tick(clock.now())  # 15 -> 10 would not halve it: kept (no flapping around small sizes)
    assert engine.core.pool_threads == 15
    assert engine.try_hold("poll")  # and it grows again when a crowd comes back
    engine.notifier.close()


def test_without_a_pool_to_grow_the_configured_threads_are_the_limit(store, clock):
    engine = Engine(store, clock=clock, settings=full_settings(threads=6, reserve_threads=2))
    assert [engine.try_hold("poll") for _ in range(5)] == [True] * 4 + [False]
    engine.notifier.close()


# --- the server: a delayed answer holds no thread ----------------------------------------------------------
def _poll_raw(port: int, body: dict) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(
        b"POST /api/v1/tasks/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
    )
    return s


def _read_response(s: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "the engine closed the connection"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(
        next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += s.recv(4096)
    return head, body


def test_an_upstream_shaped_poll_past_the_ceiling_is_answered_later_without_a_thread(tmp_path):
    """Two threads, one reserved, no growth: poll A is held on the only thread. Poll B (no opt-in) is
    past the ceiling: its answer is delayed by about its wait_secs (>= 1 s). Poll C (opted in) on the
    same thread pool is answered while B still waits: B's delay holds no thread."""
    e = start_engine(
        tmp_path, env={"ASSAY_THREADS": "2", "ASSAY_RESERVE_THREADS": "1", "ASSAY_MAX_THREADS": "2"}
    )
    try:
        wid = http("POST", e.api + "/workers/register", {"identity": "i", "queue": "q"})[1]["worker_id"]
        a = _poll_raw(e.port, {"queue": "q", "worker_id": wid, "wait_secs": 30})
        wait_until(lambda: http("GET", e.api + "/health")[1]["held_requests"] == 1, what="poll A held")
        b = _poll_raw(e.port, {"queue": "q", "worker_id": wid, "wait_secs": 2})
        c = HTTPConnection("127.0.0.1", e.port, timeout=30)
        body = json.dumps({"queue": "q", "worker_id": wid, "wait_secs": 2, "retry_after": True})
        c.request("POST", "/api/v1/tasks/poll", body=body, headers={"Content-Type": "application/json"})
        rc = c.getresponse()
        got_c = json.loads(rc.read())
        assert rc.status == 200 and got_c["task"] is None and got_c["retry_after"] >= 1.0
        b.setblocking(False)
        with pytest.raises(BlockingIOError):  # B's answer is not out yet, though C (after it) is
            b.recv(1)
        b.setblocking(True)
        head, raw = _read_response(b)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(raw) == {"task": None}
        assert b"retry-after: " in head.lower()
        for s in (a, b):
            s.close()
        c.close()
    finally:
        assert e.stop() == 0


def test_held_polls_grow_the_servers_pool_past_its_start_size(tmp_path):
    """Four threads at start, one reserved: without growth the fourth poll would be turned away. Six
    polls are all held, and /health (a reserve thread) still answers."""
    env = {"ASSAY_THREADS": "4", "ASSAY_RESERVE_THREADS": "1", "ASSAY_MAX_THREADS": "16"}
    e = start_engine(tmp_path, env=env)
    socks = []
    try:
        wid = http("POST", e.api + "/workers/register", {"identity": "i", "queue": "q"})[1]["worker_id"]
        for _ in range(6):
            socks.append(
                _poll_raw(e.port, {"queue": "q", "worker_id": wid, "wait_secs": 30, "retry_after": True})
            )
        wait_until(lambda: http("GET", e.api + "/health")[1]["held_requests"] == 6, what="six polls held")
        for s in socks:  # none was answered (a turned-away poll gets an immediate retry_after)
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
        assert "HTTP thread pool grown to 12 threads" in e.log()
    finally:
        for s in socks:
            s.close()
        assert e.stop() == 0
