"""End to end: failures inside handlers and activities fail cleanly and never crash the worker."""

from __future__ import annotations

import pytest

from tests.helpers import http
from tests.lua.e2e import event_types, events, start, wait_status

pytestmark = pytest.mark.e2e
Q = "ks"


def test_execute_parallel_with_one_failure(engine, ks_worker):
    start(engine, "ParallelFail", "par-fail", queue=Q)
    wf = wait_status(engine, "par-fail", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert "activity 'explode' failed:" in wf["error"] and "explode went bang" in wf["error"]
    evs = events(engine, "par-fail")
    done = {
        e["payload"]["name"]: e["event_type"]
        for e in evs
        if e["event_type"].startswith("Activity") and e["event_type"] != "ActivityScheduled"
    }
    # the failure is raised only once every activity of the batch has a terminal event
    assert done == {"echo": "ActivityCompleted", "explode": "ActivityFailed", "nap": "ActivityCompleted"}
    assert [e["event_type"] for e in evs].count("ActivityScheduled") == 3


@pytest.mark.parametrize(
    "child_type, expected",
    [
        ("HandlerError", "attempt to index a nil value"),
        ("UnknownActivity", "No handler registered for activity: no_such_activity"),
    ],
)
def test_child_failure_propagates_to_the_parent(engine, ks_worker, child_type, expected):
    wid = f"parent-{child_type.lower()}"
    start(engine, "Parent", wid, {"child_type": child_type}, queue=Q)
    parent = wait_status(engine, wid, worker=ks_worker)
    child = wait_status(engine, wid + "-kid")
    assert child["status"] == "FAILED" and expected in child["error"]
    assert parent["status"] == "FAILED"
    assert parent["error"].startswith(f"child workflow '{wid}-kid' failed:") and expected in parent["error"]


def test_script_error_in_handler_fails_with_lua_message(engine, ks_worker):
    start(engine, "HandlerError", "handler-error", queue=Q)
    wf = wait_status(engine, "handler-error", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert "ks_worker.lua:" in wf["error"] and "attempt to index a nil value (local 't')" in wf["error"]


def test_unknown_workflow_type(engine, ks_worker):
    start(engine, "NoSuchType", "unknown-type", queue=Q)
    wf = wait_status(engine, "unknown-type", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert wf["error"] == "no workflow handler registered for type: NoSuchType"


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("function", "cannot be encoded as JSON: cannot encode a function value at $.f"),
        ("cyclic", "cannot be encoded as JSON: cyclic table at $.self"),
    ],
)
def test_unserialisable_workflow_result(engine, ks_worker, kind, fragment):
    start(engine, "BadReturn", f"bad-return-{kind}", {"kind": kind}, queue=Q)
    wf = wait_status(engine, f"bad-return-{kind}", worker=ks_worker)
    assert wf["status"] == "FAILED" and fragment in wf["error"]
    assert wf["error"].startswith("workflow 'BadReturn' returned a value that")


def test_unserialisable_activity_input_and_result(engine, ks_worker):
    start(engine, "BadInput", "bad-input", queue=Q)
    wf = wait_status(engine, "bad-input", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert (
        "input of activity 'echo' cannot be encoded as JSON: cannot encode a function value at $.callback"
        in wf["error"]
    )
    assert "ks_worker.lua:" in wf["error"]  # raised at the ctx call site
    start(engine, "BadActivityResult", "bad-act-result", queue=Q)
    wf = wait_status(engine, "bad-act-result", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert "activity 'returns_function' returned a value that cannot be encoded as JSON" in wf["error"]


def test_commands_the_engine_rejects_fail_the_workflow(engine, ks_worker):
    start(engine, "BadOption", "bad-option", queue=Q)
    wf = wait_status(engine, "bad-option", worker=ks_worker)
    assert wf["status"] == "FAILED"
    assert (
        wf["error"].startswith("the engine rejected the workflow's commands: ")
        and "max_attempts" in wf["error"]
    )


def test_activity_errors_are_retried_per_policy(engine, ks_worker):
    start(engine, "Retry", "retry-1", queue=Q)
    wf = wait_status(engine, "retry-1", worker=ks_worker)
    assert wf["status"] == "COMPLETED" and wf["result"] == {"attempt": 2}
    assert event_types(engine, "retry-1").count("ActivityFailed") == 0  # a retried attempt is not final


def test_non_retryable_activity_error(engine, ks_worker):
    start(engine, "NonRetryable", "non-retryable", queue=Q)
    wf = wait_status(engine, "non-retryable", worker=ks_worker)
    assert wf["status"] == "FAILED" and "permanently refused" in wf["error"]
    failed = [e["payload"] for e in events(engine, "non-retryable") if e["event_type"] == "ActivityFailed"]
    assert len(failed) == 1 and failed[0].get("final_attempt", 1) == 1


def test_worker_survives_all_of_the_above(engine, ks_worker):
    start(engine, "SignalRace", "still-alive", {"timeout": 0.2}, queue=Q)
    assert wait_status(engine, "still-alive", worker=ks_worker)["status"] == "COMPLETED"
    assert ks_worker.proc.poll() is None
    workers = http("GET", engine.api + "/workers")[1]
    assert any(w["task_queue"] == Q for w in workers)
