"""A raw-HTTP worker against a real `assay serve` on a loopback port: the whole worker protocol, long-polls,
lease takeover and fencing, and the SSE stream over a real socket."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.e2e.rawworker import RawWorker, describe, event_types, events, start
from tests.helpers import http, start_engine, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    e = start_engine(tmp_path_factory.mktemp("proto"))
    yield e
    assert e.stop() == 0, e.log()


def held(api: str) -> int:
    return http("GET", api + "/health")[1]["held_requests"]


def in_thread(fn, *args, **kw):
    out: dict = {}

    def run():
        out["value"] = fn(*args, **kw)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def joined(t: threading.Thread, out: dict):
    t.join(30)
    assert not t.is_alive(), "the held poll never answered"
    return out["value"]


def test_worker_round_trip(eng):
    api = eng.api
    w = RawWorker(api, queue="rt")
    assert w.poll_workflow() is None and w.poll_activity() is None
    start(api, "rt-1", queue="rt", input={"n": 2})
    task = w.poll_workflow()
    assert task["workflow_id"] == "rt-1" and task["input"] == {"n": 2} and task["history"][0]["seq"] == 1
    assert (
        w.submit("rt-1", {"type": "ScheduleActivity", "seq": 1, "name": "double", "input": {"n": 2}}) == 200
    )
    a = w.poll_activity()
    assert a["name"] == "double" and a["input"] == {"n": 2} and a["task_queue"] == "rt"
    assert w.call("POST", f"/tasks/{a['id']}/heartbeat", {"details": {"pct": 10}}) == (
        200,
        {"cancel_requested": False},
    )
    assert w.complete(a["id"], 4) == 200
    assert w.complete(a["id"], 4) == 409  # fenced: already completed
    task = w.poll_workflow()
    assert (
        task["history"][-1]["event_type"] == "ActivityCompleted"
        and task["history"][-1]["payload"]["result"] == 4
    )
    assert w.submit("rt-1", {"type": "CompleteWorkflow", "result": {"out": 4}}) == 200
    d = describe(api, "rt-1")
    assert d["status"] == "COMPLETED" and d["result"] == {"out": 4}
    assert w.submit("rt-1", {"type": "CompleteWorkflow"}) == 409


def test_long_polls_are_woken_promptly(eng):
    """A held poll is handed the task that arrives while it waits (its wait is far longer than the test's
    patience, so only a wake-up answers it); an idle one is held for its wait, then answers empty. That
    the wake-up comes from the notifier and not from a periodic re-check is shown in-process
    (tests/engine/test_long_poll_wakeup.py), without a clock."""
    api = eng.api
    w = RawWorker(api, queue="lp")
    base = held(api)
    t, out = in_thread(w.poll_workflow, 2)  # nothing arrives: held, then answers empty when the wait ends
    wait_until(lambda: held(api) > base, what="idle long-poll held")
    assert joined(t, out) is None
    wait_until(lambda: held(api) == base, what="idle long-poll released")

    t, out = in_thread(w.poll_workflow, 20)
    wait_until(lambda: held(api) > base, what="workflow long-poll held")
    start(api, "lp-1", queue="lp")
    assert joined(t, out)["workflow_id"] == "lp-1"

    t, out = in_thread(w.poll_activity, 20)
    wait_until(lambda: held(api) > base, what="activity long-poll held")
    assert w.submit("lp-1", {"type": "ScheduleActivity", "seq": 1, "name": "a"}) == 200
    act = joined(t, out)
    assert act["name"] == "a"

    t, out = in_thread(w.poll, 20)  # the combined poll: either kind wakes it
    wait_until(lambda: held(api) > base, what="combined long-poll held")
    assert w.complete(act["id"], "done") == 200
    kind, task = joined(t, out)
    assert kind == "workflow_task" and task["history"][-1]["event_type"] == "ActivityCompleted"
    assert w.submit("lp-1", {"type": "CompleteWorkflow"}) == 200


def test_signal_and_timer(eng):
    api = eng.api
    w = RawWorker(api, queue="st")
    start(api, "st-1", queue="st")
    w.run(
        "st-1",
        {"type": "ScheduleTimer", "seq": 1, "duration_secs": 0.3},
        {"type": "WaitForSignal", "name": "go", "timer_seq": 1},
    )
    assert http("POST", api + "/workflows/st-1/signal/go", {"payload": {"ok": True}})[0] == 200
    task = w.poll_workflow(5)
    assert task["history"][-1]["event_type"] == "SignalReceived"
    assert task["history"][-1]["payload"] == {"signal": "go", "payload": {"ok": True}}
    assert w.submit("st-1", {"type": "WaitForSignal", "name": "go", "timer_seq": 1}) == 200
    task = w.poll_workflow(5)  # the timer fires by itself (the timer loop sleeps until it is due)
    assert task["history"][-1]["event_type"] == "TimerFired"
    assert w.submit("st-1", {"type": "CompleteWorkflow"}) == 200
    assert "TimerScheduled" in event_types(api, "st-1")


def test_child_and_continue_as_new(eng):
    api = eng.api
    w = RawWorker(api, queue="ch")
    start(api, "ch-parent", queue="ch")
    w.run(
        "ch-parent",
        {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "ch-kid", "input": 3},
    )
    kid = w.run("ch-kid", {"type": "CompleteWorkflow", "result": 9})
    assert kid["parent_id"] == "ch-parent" and kid["input"] == 3
    task = w.poll_workflow(5)
    assert task["workflow_id"] == "ch-parent"
    assert task["history"][-1]["payload"] == {"child_workflow_id": "ch-kid", "result": 9}
    assert w.submit("ch-parent", {"type": "ContinueAsNew", "input": {"round": 2}}) == 200
    new_id = describe(api, "ch-parent")["result"]["continued_as_new"]
    task = w.poll_workflow(5)
    assert task["workflow_id"] == new_id and task["input"] == {"round": 2}
    assert w.submit(new_id, {"type": "CompleteWorkflow"}) == 200
    assert event_types(api, "ch-parent")[-1] == "WorkflowCompleted"


def test_cancel_cascades_and_terminate(eng):
    api = eng.api
    w = RawWorker(api, queue="cc")
    start(api, "cc-parent", queue="cc")
    w.run("cc-parent", {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "cc-kid"})
    w.run("cc-kid", {"type": "ScheduleActivity", "seq": 1, "name": "slow"})
    act = w.poll_activity()
    assert http("POST", api + "/workflows/cc-parent/cancel", {"reason": "stop"})[0] == 200
    assert w.call("POST", f"/tasks/{act['id']}/heartbeat", None)[1] == {"cancel_requested": True}
    seen = set()
    while len(seen) < 2:  # both replay and acknowledge the cancellation
        task = w.poll_workflow(5)
        assert task["history"][-1]["event_type"] in ("WorkflowCancelRequested", "ChildWorkflowFailed")
        assert w.submit(task["workflow_id"], {"type": "CancelWorkflow"}) in (200, 409)
        seen.add(task["workflow_id"])
    assert describe(api, "cc-kid")["status"] == "CANCELLED"
    assert describe(api, "cc-parent")["status"] == "CANCELLED"
    assert w.complete(act["id"], "late") == 409

    start(api, "cc-term", queue="cc")
    w.poll_workflow()
    assert http("POST", api + "/workflows/cc-term/terminate", {"reason": "kill"})[0] == 200
    d = describe(api, "cc-term")
    assert d["status"] == "FAILED" and d["error"] == "kill"
    assert events(api, "cc-term")[-1]["payload"] == {"error": "kill", "terminated": True}
    assert w.submit("cc-term", {"type": "CompleteWorkflow"}) == 409


def test_lease_takeover_and_fencing(tmp_path):
    e = start_engine(tmp_path, env={"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "2"})
    try:
        api = e.api
        a, b = RawWorker(api, queue="lt"), RawWorker(api, queue="lt")
        start(api, "lt-1", queue="lt")
        assert a.poll_workflow()["workflow_id"] == "lt-1"  # a claims, then goes silent
        assert b.poll_workflow(wait=0) is None  # the lease is a's until it times out
        task = b.poll_workflow(wait=10)  # woken when the lease is recovered
        assert task["workflow_id"] == "lt-1" and task["attempt"] == 2
        before = events(api, "lt-1")
        assert a.submit("lt-1", {"type": "CompleteWorkflow", "result": "stale"}) == 409
        assert events(api, "lt-1") == before
        assert b.submit("lt-1", {"type": "ScheduleActivity", "seq": 1, "name": "x"}) == 200
        # a worker heartbeat keeps a lease alive past the timeout
        assert http("POST", api + "/workflows/lt-1/signal/s", None)[0] == 200
        assert a.poll_workflow(5)["workflow_id"] == "lt-1"
        for _ in range(8):  # each round holds b's poll 0.3 s: together longer than the 2 s lease
            assert http("POST", api + "/workers/heartbeat", {"worker_id": a.id})[0] == 200
            assert b.poll_workflow(wait=0.3) is None
        assert a.submit("lt-1", {"type": "CompleteWorkflow", "result": "kept"}) == 200
        assert describe(api, "lt-1")["result"] == "kept"
    finally:
        assert e.stop() == 0


# --- SSE over a real socket -------------------------------------------------------------------------------


class SseConn:
    """A raw-socket SSE client: GET the stream, parse the status line, collect `event:`/`data:` frames."""

    def __init__(self, port: int, path: str = "/api/v1/events/stream") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(head.split(b" ", 2)[1])

    def events(self, want: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
        """Read until `want` events arrived (keep-alive comments skipped; chunk sizes tolerated)."""
        deadline = time.monotonic() + timeout
        while True:
            out: list[tuple[str, dict]] = []
            for line in self.buf.decode("utf-8", "replace").splitlines():
                if line.startswith("event: "):
                    out.append((line[7:], {}))
                elif line.startswith("data: ") and out:
                    out[-1] = (out[-1][0], json.loads(line[6:]))
            if len(out) >= want:
                return out
            assert time.monotonic() < deadline, f"SSE: got {out}"
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            assert chunk, "stream closed"
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def test_sse_stream_over_a_socket(eng):
    s = SseConn(eng.port)
    try:
        assert s.status == 200 and "text/event-stream" in s.head.lower()
        wait_until(lambda: held(eng.api) >= 1, what="SSE stream held")
        w = RawWorker(eng.api, queue="sse")
        start(eng.api, "sse-1", queue="sse")
        w.run("sse-1", {"type": "CompleteWorkflow", "result": 1})
        got = s.events(3)
        assert [(t, d["workflow_id"]) for t, d in got] == [
            ("workflow_started", "sse-1"),
            ("workflow_running", "sse-1"),
            ("workflow_completed", "sse-1"),
        ]
        assert got[0][1]["payload"] == {"namespace": "main"}
    finally:
        s.close()
