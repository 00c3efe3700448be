"""End to end with real processes: Python workers against a live engine, next to Lua workers."""

from __future__ import annotations

import pytest

from tests.helpers import http, start_engine, wait_until
from tests.lua.e2e import Worker, describe, event_types, events, signal, start, wait_status
from tests.python.e2e import PY_WORKER, WORKERS, PyWorker

pytestmark = pytest.mark.e2e


def lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_9_mid_activity_and_mid_workflow_another_worker_finishes(engine, logdir, tmp_path):
    q = "py-crash"
    a = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    a.wait_ready()
    start(engine, "PyCrashy", "pycrash-1", {"dir": str(tmp_path)}, queue=q)
    wait_until(lambda: (tmp_path / "activity").exists(), 15, what="the activity to block")
    a.kill()  # SIGKILL while the activity runs
    tokens = [
        e["payload"]["value"] for e in events(engine, "pycrash-1") if e["event_type"] == "SideEffectRecorded"
    ]
    assert len(tokens) == 1
    b = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    try:
        # the activity's attempt is lost with worker A, retried on B; then B blocks inside the handler
        wait_until(lambda: (tmp_path / "handler").exists(), 30, what="the handler to block on worker B")
        b.kill()  # SIGKILL while B holds the workflow-task lease
        c = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
        try:
            wf = wait_status(engine, "pycrash-1", timeout=30, worker=c)
        finally:
            assert c.stop() == 0, c.log()
    finally:
        b.kill()
    assert wf["status"] == "COMPLETED", wf
    assert wf["result"]["token"] == tokens[0]
    assert wf["result"]["activity"]["attempt"] >= 2
    # completed work is never redone: the side effect ran once, the first activity once
    assert lines(tmp_path / "effects") == 1
    assert lines(tmp_path / "activities") == 1
    recorded = [e for e in events(engine, "pycrash-1") if e["event_type"] == "SideEffectRecorded"]
    assert [e["payload"]["value"] for e in recorded] == tokens


def test_python_parent_lua_child_and_lua_parent_python_child(engine, logdir):
    py = PyWorker(PY_WORKER, engine.url, logdir, queue="py-side")
    lua = Worker(WORKERS / "interop.lua", engine.url, logdir, queue="lua-side")
    py.wait_ready()
    lua.wait_ready()
    try:
        start(engine, "PyParent", "interop-py", {"n": 5, "lua_queue": "lua-side"}, queue="py-side")
        start(engine, "LuaParent", "interop-lua", {"n": 7, "py_queue": "py-side"}, queue="lua-side")
        a = wait_status(engine, "interop-py", worker=py)
        b = wait_status(engine, "interop-lua", worker=lua)
    finally:
        assert py.stop() == 0, py.log()
        assert lua.stop() == 0, lua.log()
    assert a["status"] == "COMPLETED", a
    assert a["result"] == {"parent": "python", "kid": {"from": "lua", "n": 15, "queue": "lua-side"}}
    assert b["status"] == "COMPLETED", b
    assert b["result"] == {"parent": "lua", "kid": {"from": "python", "n": 14, "queue": "py-side"}}
    # the engine sees the same shapes from both languages
    assert (
        event_types(engine, "interop-py")
        == event_types(engine, "interop-lua")
        == [
            "WorkflowStarted",
            "ChildWorkflowStarted",
            "ChildWorkflowCompleted",
            "WorkflowCompleted",
        ]
    )
    assert event_types(engine, "interop-py-kid") == event_types(engine, "interop-lua-kid")
    assert describe(engine, "interop-py-kid")["parent_id"] == "interop-py"


def test_nondeterminism_fails_the_task_and_the_right_code_resumes(engine, logdir):
    q = "py-shift"
    v1 = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    v1.wait_ready()
    start(engine, "Shift", "shift-1", None, queue=q)
    wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, "shift-1"), 15, what="step one")
    assert v1.stop() == 0, v1.log()
    v2 = PyWorker(PY_WORKER, engine.url, logdir, queue=q, env={"SHIFT_VERSION": "2"})
    v2.wait_ready()
    signal(engine, "shift-1", "next", {"go": 1})
    expected = "nondeterministic workflow: activity #1 was 'step_one' in the history, the code now runs 'step_renamed'"
    try:
        wait_until(lambda: expected in v2.log(), 15, what="the nondeterminism error")
    finally:
        assert v2.stop() == 0, v2.log()
    wf = describe(engine, "shift-1")
    assert wf["status"] == "RUNNING", wf  # not failed, not corrupted
    before = event_types(engine, "shift-1")
    assert "WorkflowFailed" not in before and before.count("ActivityScheduled") == 1
    v1 = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    try:
        wf = wait_status(engine, "shift-1", timeout=90, worker=v1)
    finally:
        assert v1.stop() == 0, v1.log()
    assert wf["status"] == "COMPLETED", wf
    assert wf["result"] == {"first": "one", "second": {"two": {"go": 1}}}


def test_heartbeats_extend_the_lease_of_a_long_handler(engine, logdir):
    q = "py-slow"
    w = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    w.wait_ready()
    try:
        start(
            engine, "SlowHandler", "slow-1", {"secs": 3.5}, queue=q
        )  # the lease lapses after 2 s unextended
        wf = wait_status(engine, "slow-1", timeout=30, worker=w)
    finally:
        assert w.stop() == 0, w.log()
    assert wf["status"] == "COMPLETED" and wf["result"]["took"] == 3.5, wf
    assert "lease lost" not in w.log()
    assert event_types(engine, "slow-1").count("SideEffectRecorded") == 2  # ran once, no takeover


def running_activities(engine, wf_id: str) -> int:
    ids = [
        e["payload"]["activity_id"] for e in events(engine, wf_id) if e["event_type"] == "ActivityScheduled"
    ]
    return sum(http("GET", engine.api + f"/activities/{i}")[1]["status"] == "RUNNING" for i in ids)


def test_sigterm_finishes_the_activity_in_hand_and_deregisters(engine, logdir, tmp_path):
    q = "py-stop"
    w = PyWorker(PY_WORKER, engine.url, logdir, queue=q)
    w.wait_ready()
    start(engine, "Nap", "nap-1", {"secs": 1.0, "marker": str(tmp_path / "nap")}, queue=q)
    wait_until(lambda: (tmp_path / "nap").exists(), 15, what="the nap to start")
    assert w.stop() == 0, w.log()
    assert "SIGTERM received: finishing the task in hand" in w.log()
    assert "ActivityCompleted" in event_types(engine, "nap-1")  # the attempt in hand was reported
    workers = http("GET", engine.api + "/workers")[1]
    assert all(x["task_queue"] != q for x in workers), workers  # deregistered


def test_concurrency_runs_activities_at_the_same_time(engine, logdir, tmp_path):
    q = "py-conc"
    w = PyWorker(PY_WORKER, engine.url, logdir, queue=q, env={"PY_CONCURRENCY": "3"})
    w.wait_ready()
    try:
        start(engine, "Gather", "gather-1", {"dir": str(tmp_path), "n": 3}, queue=q)
        wf = wait_status(engine, "gather-1", timeout=30, worker=w)
    finally:
        assert w.stop() == 0, w.log()
    assert wf["status"] == "COMPLETED" and wf["result"] == [0, 1, 2], wf
    assert "3 slots" in w.log()


def test_worker_reconnects_after_an_engine_restart(tmp_path, logdir):
    (tmp_path / "e1").mkdir()
    eng = start_engine(tmp_path / "e1")
    w = PyWorker(PY_WORKER, eng.url, logdir, queue="py-restart", env={"ASSAY_WORKER_POLL_WAIT_SECS": "1"})
    try:
        w.wait_ready()
        eng.kill()
        eng = start_engine(tmp_path / "e1", port=eng.port, db=eng.db)
        start(eng, "Nap", "nap-restart", {"secs": 0, "marker": str(tmp_path / "m")}, queue="py-restart")
        wf = wait_status(eng, "nap-restart", timeout=30, worker=w)
        assert wf["status"] == "COMPLETED" and wf["result"] == "rested"
        assert "engine reachable again" in w.log()
    finally:
        w.stop()
        eng.stop()


def test_python_worker_file_runs_with_plain_python(engine, logdir, tmp_path):
    w = PyWorker(PY_WORKER, engine.url, logdir, queue="py-direct", direct=True)
    try:
        w.wait_ready()
        start(engine, "Nap", "nap-direct", {"secs": 0, "marker": str(tmp_path / "m")}, queue="py-direct")
        assert wait_status(engine, "nap-direct", worker=w)["result"] == "rested"
    finally:
        assert w.stop() == 0, w.log()  # a graceful exit (a SIGKILL fallback would give -9)
    assert " stopped" in w.log()
