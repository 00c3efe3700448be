"""A child that continues-as-new stays the parent's child: the parent hears once, under the id it started,
with the final run's outcome; cancelling the parent reaches the current run."""

from __future__ import annotations


def _run(engine, wid, wf_id, commands):
    task = engine.claim_workflow_task("q", wid)
    assert task is not None and task["id"] == wf_id, task
    engine.submit_commands(wf_id, wid, commands)


def _events(engine, wf_id):
    return [(e["event_type"], e["payload"]) for e in engine.list_events(wf_id)]


def _setup(engine):
    wid = engine.register_worker(identity="w", queue="q")
    engine.start_workflow(workflow_type="P", workflow_id="parent", task_queue="q")
    _run(engine, wid, "parent", [{"type": "StartChildWorkflow", "workflow_type": "C", "workflow_id": "kid"}])
    return wid


def test_chain_notifies_parent_once_with_the_original_id(engine):
    wid = _setup(engine)
    _run(engine, wid, "kid", [{"type": "ContinueAsNew", "input": {"round": 2}}])
    run2 = [w for w in engine.list_children("parent") if w["id"] != "kid"][0]
    assert run2["input"] == {"round": 2} and run2["status"] == "PENDING"
    assert not any(
        t.startswith("ChildWorkflow") and t != "ChildWorkflowStarted" for t, _ in _events(engine, "parent")
    )  # not told yet: the chain goes on
    _run(engine, wid, run2["id"], [{"type": "ContinueAsNew", "input": {"round": 3}}])
    run3 = [w for w in engine.list_children("parent") if w["id"] not in ("kid", run2["id"])][0]
    _run(engine, wid, run3["id"], [{"type": "CompleteWorkflow", "result": "final"}])
    done = [p for t, p in _events(engine, "parent") if t == "ChildWorkflowCompleted"]
    assert done == [{"child_workflow_id": "kid", "result": "final"}]
    assert engine.get_workflow("kid")["result"] == {"continued_as_new": run2["id"]}


def test_failed_chain_reports_failure_under_the_original_id(engine):
    wid = _setup(engine)
    _run(engine, wid, "kid", [{"type": "ContinueAsNew", "input": None}])
    run2 = [w for w in engine.list_children("parent") if w["id"] != "kid"][0]
    _run(engine, wid, run2["id"], [{"type": "FailWorkflow", "error": "boom"}])
    failed = [p for t, p in _events(engine, "parent") if t == "ChildWorkflowFailed"]
    assert len(failed) == 1 and failed[0]["child_workflow_id"] == "kid" and failed[0]["error"] == "boom"


def test_cancelling_the_parent_reaches_the_current_run(engine):
    wid = _setup(engine)
    _run(engine, wid, "kid", [{"type": "ContinueAsNew", "input": None}])
    run2 = [w for w in engine.list_children("parent") if w["id"] != "kid"][0]
    engine.cancel("parent", "stop")
    assert any(t == "WorkflowCancelRequested" for t, _ in _events(engine, run2["id"]))


def test_continuing_a_finished_child_starts_a_parentless_run(engine):
    wid = _setup(engine)
    _run(engine, wid, "kid", [{"type": "CompleteWorkflow", "result": 1}])
    new = engine.continue_as_new("kid", {"again": True})
    assert engine.get_workflow(new["id"])["parent_id"] is None
    assert [p for t, p in _events(engine, "parent") if t == "ChildWorkflowCompleted"] == [
        {"child_workflow_id": "kid", "result": 1}
    ]
