"""End to end: `assay run` workers against a live engine, one test per ctx behaviour."""

from __future__ import annotations

import pytest

from tests.helpers import http, wait_until
from tests.lua.e2e import describe, event_types, events, signal, start, state, wait_status

pytestmark = pytest.mark.e2e
Q = "ks"


def test_every_ctx_method(engine, ks_worker):
    start(engine, "AllCtx", "all-1", {"x": 1}, queue=Q, search_attributes={"team": "qa"})
    wait_until(
        lambda: (state(engine, "all-1", "phase") or {}).get("value") == "waiting", 15, what="waiting phase"
    )
    snap = state(engine, "all-1")["state"]
    assert set(snap) == {"phase", "pipeline_state"}  # the failing query is left out
    assert snap["pipeline_state"]["steps"][0]["actions"] == ["go"]
    assert describe(engine, "all-1")["search_attributes"]["phase"] == "parallel-done"
    signal(engine, "all-1", "go", {"by": "tester"})
    wf = wait_status(engine, "all-1", worker=ks_worker)
    assert wf["status"] == "COMPLETED", wf
    res = wf["result"]
    assert res["echoed"] == {"x": 1}
    assert res["par"] == ["a", "b", 42]
    assert res["sig"] == {"by": "tester"}
    assert res["child"] == {"doubled": 10, "parent": "all-1"}
    assert res["nothing_is_nil"] is True
    info = res["info"]
    assert (
        info["workflow_id"] == "all-1" and info["workflow_type"] == "AllCtx" and info["namespace"] == "main"
    )
    assert (
        info["task_queue"] == Q and info["run_id"] == wf["run_id"] and isinstance(info["start_time"], float)
    )
    act = res["act_info"]
    assert act["workflow_id"] == "all-1" and act["name"] == "info" and act["attempt"] == 1
    assert act["max_attempts"] == 2 and act["cancelled"] is False and act["task_queue"] == Q
    # side effects: recorded once each (nil included), the token is the recorded value
    fx = [e["payload"] for e in events(engine, "all-1") if e["event_type"] == "SideEffectRecorded"]
    assert [(p["name"], p["side_effect_seq"]) for p in fx] == [("token", 1), ("nothing", 2)]
    assert fx[0]["value"] == res["token"] and fx[1]["value"] is None
    assert wf["search_attributes"] == {
        "team": "qa",
        "phase": "done",
        "score": 7,
        **{k: v for k, v in wf["search_attributes"].items() if k.startswith("assay")},
    }
    final = state(engine, "all-1")["state"]
    assert final["phase"] == "done" and final["pipeline_state"]["steps"][0]["status"] == "done"
    kids = http("GET", engine.api + "/workflows/all-1/children")[1]
    assert [k["id"] for k in kids] == ["all-1-child"] and kids[0]["task_queue"] == Q
    types = event_types(engine, "all-1")
    assert types[0] == "WorkflowStarted" and types[-1] == "WorkflowCompleted"
    assert types.count("ActivityScheduled") == 5 and types.count("ChildWorkflowCompleted") == 1


def test_wait_for_signal_signal_wins(engine, ks_worker):
    start(engine, "SignalRace", "race-signal", {"timeout": 30}, queue=Q)
    wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, "race-signal"), 10, what="await event")
    signal(engine, "race-signal", "go", {"n": 1})
    wf = wait_status(engine, "race-signal", worker=ks_worker)
    assert wf["status"] == "COMPLETED"
    assert wf["result"] == {"payload": {"n": 1}, "got": True, "got2": False}


def test_wait_for_signal_buffered_signal_is_delivered(engine, ks_worker):
    # the signal arrives while the workflow is still busy with an activity: the later wait gets it
    start(engine, "LateWait", "race-buffered", queue=Q)
    wait_until(lambda: "ActivityScheduled" in event_types(engine, "race-buffered"), 10, what="activity")
    signal(engine, "race-buffered", "go", "early")
    wf = wait_status(engine, "race-buffered", worker=ks_worker)
    assert wf["result"] == {"payload": "early", "got": True}
    assert "TimerScheduled" not in event_types(engine, "race-buffered")  # answered from history, no wait


def test_wait_for_signal_timer_wins(engine, ks_worker):
    start(engine, "SignalRace", "race-timer", {"timeout": 0.3}, queue=Q)
    wf = wait_status(engine, "race-timer", worker=ks_worker)
    assert wf["status"] == "COMPLETED"
    assert wf["result"] == {"got": False, "got2": False}  # payload nil: the timer fired first
    # a signal sent after the timeout is not delivered to the finished wait
    types = event_types(engine, "race-timer")
    assert types.count("TimerFired") == 2 and "SignalReceived" not in types


def test_cancel_while_waiting(engine, ks_worker):
    start(engine, "WaitForever", "cancel-wait", queue=Q)
    wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, "cancel-wait"), 10, what="waiting")
    status, _, _ = http("POST", engine.api + "/workflows/cancel-wait/cancel", {"reason": "test"})
    assert status == 200
    wf = wait_status(engine, "cancel-wait", worker=ks_worker)
    assert wf["status"] == "CANCELLED"
    assert event_types(engine, "cancel-wait")[-1] == "WorkflowCancelled"


def test_cancel_reaches_a_running_activity_through_heartbeat(engine, ks_worker, tmp_path):
    marker = tmp_path / "marker"
    start(engine, "CancelActivity", "cancel-act", {"marker": str(marker)}, queue=Q)
    wait_until(lambda: marker.exists(), 10, what="activity to start")
    http("POST", engine.api + "/workflows/cancel-act/cancel", {})
    wait_until(lambda: marker.read_text() == "cancelled", 10, what="activity to see the cancellation")
    wf = wait_status(engine, "cancel-act", worker=ks_worker)
    assert wf["status"] == "CANCELLED"


def test_self_cancel(engine, ks_worker):
    start(engine, "SelfCancel", "self-cancel", queue=Q)
    wf = wait_status(engine, "self-cancel", worker=ks_worker)
    assert wf["status"] == "CANCELLED" and wf["result"] is None


def test_continue_as_new(engine, ks_worker):
    start(engine, "Continue", "can-1", {"n": 0}, queue=Q)
    old = wait_status(engine, "can-1", worker=ks_worker)
    assert old["status"] == "COMPLETED"
    new_id = events(engine, "can-1")[-1]["payload"]["continued_as_new"]
    second = wait_status(engine, new_id, worker=ks_worker)
    third_id = events(engine, new_id)[-1]["payload"]["continued_as_new"]
    third = wait_status(engine, third_id, worker=ks_worker)
    assert second["status"] == "COMPLETED" and third["status"] == "COMPLETED"
    assert third["result"] == {"n": 2, "run": third_id} and third["task_queue"] == Q


def test_side_effect_nil_and_lease_extension(engine, ks_worker):
    # the handler sleeps 3 s inside side_effect: longer than the 2 s lease; heartbeats keep it
    start(engine, "LongHandler", "long-1", {"secs": 3}, queue=Q)
    wf = wait_status(engine, "long-1", timeout=20, worker=ks_worker)
    assert wf["status"] == "COMPLETED" and wf["result"] == "slow-value"
    types = event_types(engine, "long-1")
    assert types.count("SideEffectRecorded") == 1
    assert "lease lost" not in ks_worker.log()
