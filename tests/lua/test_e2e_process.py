"""End to end: worker processes that crash, stop, reconnect, and run tasks in parallel."""

from __future__ import annotations

import pytest

from tests.helpers import http, start_engine, wait_until
from tests.lua.e2e import WORKERS, Worker, describe, event_types, events, start, wait_status

pytestmark = pytest.mark.e2e
KS = WORKERS / "ks_worker.lua"


def test_kill_9_mid_workflow_resumes_with_the_same_side_effect(engine, logdir, tmp_path):
    q = "crash"
    a = Worker(KS, engine.url, logdir, queue=q)
    a.wait_ready()
    start(engine, "Crashy", "crashy-1", {"dir": str(tmp_path)}, queue=q)
    wait_until(lambda: (tmp_path / "activity").exists(), 10, what="activity to block")
    a.kill()  # SIGKILL while the activity runs
    token = [
        e["payload"]["value"] for e in events(engine, "crashy-1") if e["event_type"] == "SideEffectRecorded"
    ]
    assert len(token) == 1
    b = Worker(KS, engine.url, logdir, queue=q)
    try:
        # the activity times out (no heartbeat), is retried on B; then B blocks inside the handler
        wait_until(lambda: (tmp_path / "handler").exists(), 20, what="handler to block on the new worker")
        b.kill()  # SIGKILL while B holds the workflow-task lease
        c = Worker(KS, engine.url, logdir, queue=q)
        try:
            wf = wait_status(engine, "crashy-1", timeout=20, worker=c)
        finally:
            assert c.stop() == 0
    finally:
        b.kill()
    assert wf["status"] == "COMPLETED", wf
    assert wf["result"]["token"] == token[0]
    assert wf["result"]["activity"]["attempt"] >= 2 and wf["result"]["slow"] == "after-crash"
    tokens = [e["payload"] for e in events(engine, "crashy-1") if e["event_type"] == "SideEffectRecorded"]
    assert [t["value"] for t in tokens if t["name"] == "token"] == [token[0]]


def running_activities(engine, wf_id: str) -> int:
    ids = [
        e["payload"]["activity_id"] for e in events(engine, wf_id) if e["event_type"] == "ActivityScheduled"
    ]
    return sum(http("GET", engine.api + f"/activities/{i}")[1]["status"] == "RUNNING" for i in ids)


def test_sigterm_finishes_the_task_in_hand(engine, logdir, tmp_path):
    q = "stopper"
    w = Worker(KS, engine.url, logdir, queue=q)
    w.wait_ready()
    start(engine, "TwoNaps", "graceful-1", {"secs": 1.0}, queue=q)
    wait_until(lambda: running_activities(engine, "graceful-1") == 1, 10, what="the worker to take one nap")
    assert w.stop() == 0, w.log()
    types = event_types(engine, "graceful-1")
    assert types.count("ActivityCompleted") == 1, types  # finished and reported before exiting
    assert running_activities(engine, "graceful-1") == 0  # the other nap stays queued, not taken
    assert "SIGTERM received" in w.log() and " stopped" in w.log()
    # an idle worker stops before its long poll ends: the poll waits 60 s, the stop gives it 30 s before
    # SIGKILL (which would make the exit status -9)
    w2 = Worker(KS, engine.url, logdir, queue="idle", env={"ASSAY_WORKER_POLL_WAIT_SECS": "60"})
    w2.wait_ready()
    assert w2.stop(timeout=30) == 0, w2.log()
    # finish the left-over activity so nothing lingers
    w3 = Worker(KS, engine.url, logdir, queue=q)
    assert wait_status(engine, "graceful-1", worker=w3)["status"] == "COMPLETED"
    w3.stop()


def test_stopped_worker_does_not_swallow_tasks(tmp_path, logdir):
    # the stopping worker aborts its idle long poll and deregisters: the engine must not hand the next
    # task to that poll (it would sit leased to a worker that is gone). The lease here outlives the test's
    # patience, so a swallowed task would never reach b.
    eng = start_engine(tmp_path, env={"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "600"})
    a = Worker(KS, eng.url, logdir, queue="ghost")
    try:
        a.wait_ready()
        assert a.stop() == 0
        b = Worker(KS, eng.url, logdir, queue="ghost")
        b.wait_ready()
        try:
            start(eng, "SignalRace", "ghost-1", {"timeout": 0.1}, queue="ghost")
            assert wait_status(eng, "ghost-1", worker=b)["status"] == "COMPLETED"
        finally:
            assert b.stop() == 0
    finally:
        a.kill()
        assert eng.stop() == 0


def test_concurrency_runs_activities_in_parallel(engine, logdir):
    q = "conc"
    w = Worker(KS, engine.url, logdir, queue=q, env={"ASSAY_WORKER_CONCURRENCY": "2"})
    w.wait_ready()
    try:
        start(engine, "TwoNaps", "naps-1", {"secs": 1.0}, queue=q)
        wf = wait_status(engine, "naps-1", worker=w)
        assert wf["status"] == "COMPLETED"
        a, b = wf["result"]
        assert a["start"] < b["stop"] and b["start"] < a["stop"], wf["result"]  # the naps overlapped
        workers = [x for x in http("GET", engine.api + "/workers")[1] if x["task_queue"] == q]
        assert len(workers) == 1 and workers[0]["max_concurrent_activities"] == 2  # one registration, 2 slots
    finally:
        assert w.stop() == 0, w.log()
    assert "2 slots" in w.log()


def test_engine_restart_while_worker_listens(tmp_path, logdir):
    eng = start_engine(tmp_path)
    w = Worker(KS, eng.url, logdir, queue="restart")
    try:
        w.wait_ready()
        start(eng, "SignalRace", "before-restart", {"timeout": 0.2}, queue="restart")
        assert wait_status(eng, "before-restart", worker=w)["status"] == "COMPLETED"
        eng.stop()
        wait_until(lambda: "engine unreachable" in w.log(), 15, what="worker to notice the engine is gone")
        assert w.proc.poll() is None  # still running
        eng = start_engine(tmp_path, db=eng.db, port=eng.port)
        start(eng, "SignalRace", "after-restart", {"timeout": 0.2}, queue="restart")
        assert wait_status(eng, "after-restart", timeout=20, worker=w)["status"] == "COMPLETED"
        assert "engine reachable again" in w.log()
        assert describe(eng, "before-restart")["status"] == "COMPLETED"
    finally:
        w.stop()
        eng.stop()
