"""Signals, cancellation, termination, children and continue-as-new (docs/design.md: Children, Cancel and terminate, Continue-as-new)."""

from __future__ import annotations

import pytest

from assay.errors import Conflict, NotFound
from tests.engine.support import Worker, act, activities, assert_gap_free, payloads, start, status, types


@pytest.fixture
def w(engine):
    return Worker(engine)


def child_cmd(child_id: str, **kw) -> dict:
    return {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": child_id, **kw}


def family(engine, w, clock):
    """parent -> kid (RUNNING, with a pending activity) -> grandkid (PENDING)."""
    start(engine, "parent")
    w.run("parent", child_cmd("kid"))
    w.run("kid", act("kid-work", 1), child_cmd("grandkid"))
    clock.advance(1)


# --- signals -----------------------------------------------------------------------------------------


def test_signal_is_recorded_and_wakes_the_workflow(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "WaitForSignal", "name": "go"})
    engine.signal("wf", "go", [1, 2])
    engine.signal("wf", "go", None)
    assert payloads(engine, "wf", "SignalReceived") == [
        {"signal": "go", "payload": [1, 2]},
        {"signal": "go", "payload": None},
    ]
    assert w.claim()["id"] == "wf"


def test_signal_to_unknown_or_finished_workflow(engine, w):
    with pytest.raises(NotFound):
        engine.signal("ghost", "go", None)
    start(engine, "wf")
    w.run("wf", {"type": "CompleteWorkflow"})
    with pytest.raises(Conflict):
        engine.signal("wf", "go", None)
    assert "SignalReceived" not in types(engine, "wf")


# --- cancellation ------------------------------------------------------------------------------------


def test_cancel_of_a_pending_workflow_is_final_at_once(engine):
    start(engine, "wf")
    engine.cancel("wf", "not needed")
    rec = engine.get_workflow("wf")
    assert rec["status"] == "CANCELLED" and rec["completed_at"] is not None
    assert types(engine, "wf") == ["WorkflowStarted", "WorkflowCancelRequested", "WorkflowCancelled"]
    assert payloads(engine, "wf", "WorkflowCancelRequested") == [{"reason": "not needed"}]
    assert Worker(engine).claim() is None


def test_cancel_of_a_running_workflow_is_two_phase(engine, w, clock):
    start(engine, "wf")
    w.run("wf", act("slow", 1), act("queued", 2), {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    running = w.claim_activity()
    engine.cancel("wf")
    by_seq = {a["seq"]: a for a in activities(engine, "wf")}
    assert by_seq[2]["status"] == "CANCELLED"  # pending: cancelled at once
    assert by_seq[1]["status"] == "RUNNING" and by_seq[1]["cancel_requested"] is True
    assert engine.heartbeat_activity(running["id"], None, w.id) == {"cancel_requested": True}
    assert payloads(engine, "wf", "WorkflowCancelRequested") == [None]
    assert status(engine, "wf") == "RUNNING" and engine.get_workflow("wf")["cancel_requested"] is True
    clock.advance(10)
    assert engine.fire_due_timers() == 0  # its timer was cancelled
    task = w.claim()  # woken to replay and acknowledge
    assert task["history"][-1]["event_type"] == "WorkflowCancelRequested"
    w.submit("wf", {"type": "CancelWorkflow"})
    assert status(engine, "wf") == "CANCELLED"
    assert types(engine, "wf")[-1] == "WorkflowCancelled"
    assert_gap_free(engine, "wf")


def test_cancel_while_a_worker_holds_the_lease(engine, w):
    start(engine, "wf")
    w.claim()
    engine.cancel("wf")
    w.submit("wf", act("late", 1))  # the in-flight run still lands
    w.run("wf", {"type": "CancelWorkflow"})  # the request is seen on the next replay
    assert status(engine, "wf") == "CANCELLED"
    assert [a["status"] for a in activities(engine, "wf")] == ["CANCELLED"]


def test_cancel_cascades_to_children_and_notifies_the_parent(engine, w, clock):
    family(engine, w, clock)
    engine.cancel("parent", "shutdown")
    assert status(engine, "grandkid") == "CANCELLED"  # it was PENDING: final at once
    assert payloads(engine, "kid", "WorkflowCancelRequested") == [{"reason": "shutdown"}]
    assert [a["status"] for a in activities(engine, "kid")] == ["CANCELLED"]
    (gk_failed,) = payloads(engine, "kid", "ChildWorkflowFailed")
    assert gk_failed["child_workflow_id"] == "grandkid" and "cancel" in gk_failed["error"]
    # the kid acknowledges; the parent hears about it
    while (task := w.claim()) is not None:
        if task["id"] == "kid":
            w.submit("kid", {"type": "CancelWorkflow"})
        else:
            w.submit(task["id"], {"type": "WaitForSignal", "name": "never"})
    assert status(engine, "kid") == "CANCELLED"
    (kid_failed,) = payloads(engine, "parent", "ChildWorkflowFailed")
    assert kid_failed["child_workflow_id"] == "kid" and kid_failed["reason"] == "cancelled"


def test_cancel_of_a_finished_workflow_is_a_conflict(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "CompleteWorkflow"})
    with pytest.raises(Conflict):
        engine.cancel("wf")
    with pytest.raises(NotFound):
        engine.cancel("ghost")
    assert types(engine, "wf") == ["WorkflowStarted", "WorkflowCompleted"]


# --- termination ---------------------------------------------------------------------------------------


def test_terminate(engine, w, clock):
    start(engine, "wf")
    w.run("wf", act("x", 1), {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    engine.terminate("wf", "operator said so")
    rec = engine.get_workflow("wf")
    assert (
        rec["status"] == "FAILED" and rec["error"] == "operator said so" and rec["completed_at"] is not None
    )
    assert payloads(engine, "wf", "WorkflowFailed") == [{"error": "operator said so", "terminated": True}]
    assert [a["status"] for a in activities(engine, "wf")] == ["CANCELLED"]
    clock.advance(6)
    assert engine.fire_due_timers() == 0
    assert w.claim() is None and w.claim_activity() is None
    with pytest.raises(Conflict):
        engine.terminate("wf")


def test_terminate_default_reason(engine):
    start(engine, "wf")
    engine.terminate("wf")
    assert engine.get_workflow("wf")["error"] == "terminated"
    assert payloads(engine, "wf", "WorkflowFailed") == [{"error": "terminated", "terminated": True}]


def test_terminate_cascades_and_notifies_the_parent(engine, w, clock):
    family(engine, w, clock)
    engine.terminate("kid", "kill")
    assert status(engine, "kid") == "FAILED" and status(engine, "grandkid") == "FAILED"
    assert payloads(engine, "grandkid", "WorkflowFailed")[0]["terminated"] is True
    (p,) = payloads(engine, "parent", "ChildWorkflowFailed")
    assert p["child_workflow_id"] == "kid" and p["reason"] == "terminated" and "kill" in p["error"]
    assert "ChildWorkflowFailed" not in types(engine, "kid")  # a terminated parent is not notified
    assert w.claim()["id"] == "parent"


# --- child outcomes (design.md "Children") ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, event, check",
    [
        ({"type": "CompleteWorkflow", "result": {"v": 7}}, "ChildWorkflowCompleted", {"result": {"v": 7}}),
        (
            {"type": "FailWorkflow", "error": "kaput"},
            "ChildWorkflowFailed",
            {"error": "kaput", "reason": "failed"},
        ),
        ({"type": "CancelWorkflow"}, "ChildWorkflowFailed", {"reason": "cancelled"}),
    ],
)
def test_parent_is_notified_of_every_child_outcome(engine, w, command, event, check):
    start(engine, "parent")
    w.run("parent", child_cmd("kid"))
    w.run("kid", command)
    (p,) = payloads(engine, "parent", event)
    assert p["child_workflow_id"] == "kid"
    for k, v in check.items():
        assert p[k] == v
    task = w.claim()
    assert task["id"] == "parent" and task["history"][-1]["event_type"] == event


def test_child_cancelled_externally_notifies_the_parent(engine, w):
    start(engine, "parent")
    w.run("parent", child_cmd("kid"))
    engine.cancel("kid", "no")
    (p,) = payloads(engine, "parent", "ChildWorkflowFailed")
    assert p["child_workflow_id"] == "kid" and p["reason"] == "cancelled"


# --- continue-as-new (design.md "Continue-as-new") ---------------------------------------------------------------------


def test_continue_as_new_command(engine, w, clock):
    start(engine, "loop", queue="q", namespace="team", search_attributes={"tenant": "a"}, input=1)
    lw = Worker(engine, queue="q", namespace="team")
    lw.claim()
    lw.submit("loop", act("x", 1), {"type": "ContinueAsNew", "input": 2})
    new_id = f"loop-continued-{int(clock.now())}"
    old = engine.get_workflow("loop")
    assert old["status"] == "COMPLETED" and old["result"] == {"continued_as_new": new_id}
    assert payloads(engine, "loop", "WorkflowCompleted") == [{"continued_as_new": new_id}]
    assert [a["status"] for a in activities(engine, "loop")] == ["CANCELLED"]
    new = engine.get_workflow(new_id)
    assert new["status"] == "PENDING" and new["input"] == 2 and new["run_id"] != old["run_id"]
    assert (new["workflow_type"], new["namespace"], new["task_queue"]) == ("T", "team", "q")
    assert new["search_attributes"] == old["search_attributes"] and new["parent_id"] is None
    assert types(engine, new_id) == ["WorkflowStarted"]
    assert lw.claim()["id"] == new_id


def test_continue_as_new_twice_in_one_second_gets_distinct_ids(engine, w):
    start(engine, "loop")
    ids = ["loop"]
    for i in range(3):
        w.claim()
        w.submit(ids[-1], {"type": "ContinueAsNew", "input": i})
        ids.append(engine.get_workflow(ids[-1])["result"]["continued_as_new"])
    assert len(set(ids)) == 4
    assert all(
        i.startswith("loop-continued-") and "-continued-" not in i[len("loop-continued-") :] for i in ids[1:]
    )
    assert [status(engine, i) for i in ids] == ["COMPLETED", "COMPLETED", "COMPLETED", "PENDING"]


def test_continue_as_new_rest_form(engine, w, clock):
    start(engine, "wf")
    new = engine.continue_as_new("wf", {"page": 2})
    assert new["id"].startswith("wf-continued-") and new["input"] == {"page": 2}
    assert payloads(engine, "wf", "WorkflowCompleted") == [{"continued_as_new": new["id"]}]
    named = engine.continue_as_new(new["id"], None, "wf-page-3")
    assert named["id"] == "wf-page-3" and status(engine, new["id"]) == "COMPLETED"
    with pytest.raises(Conflict):
        engine.continue_as_new("wf-page-3", None, "wf")  # the explicit id is taken: nothing changes
    assert status(engine, "wf-page-3") == "PENDING" and types(engine, "wf-page-3") == ["WorkflowStarted"]
    with pytest.raises(NotFound):
        engine.continue_as_new("ghost")


def test_continue_as_new_of_a_finished_run_leaves_it_alone(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "CompleteWorkflow", "result": "done"})
    new = engine.continue_as_new("wf", 5)
    assert engine.get_workflow("wf")["result"] == "done"
    assert types(engine, "wf") == ["WorkflowStarted", "WorkflowCompleted"]
    assert status(engine, new["id"]) == "PENDING"
