"""A workflow task whose batch keeps failing goes back to the queue with a growing delay (no hot loop)."""

from __future__ import annotations

import pytest

from assay.background import ActivityLoop
from assay.errors import BadRequest

BAD = [{"type": "ScheduleActivity", "seq": 1}]  # no name: rejected, the batch changes nothing


def _claim(engine, wid):
    return engine.claim_workflow_task("q", wid)


def test_repeated_bad_batches_back_off_then_success_resets(engine, clock):
    wid = engine.register_worker(identity="w", queue="q")
    engine.start_workflow(workflow_type="T", workflow_id="b1", task_queue="q")
    assert _claim(engine, wid)["id"] == "b1"
    with pytest.raises(BadRequest):
        engine.submit_commands("b1", wid, BAD)
    assert _claim(engine, wid)["id"] == "b1"  # the first failure is retried at once
    with pytest.raises(BadRequest):
        engine.submit_commands("b1", wid, BAD)
    assert _claim(engine, wid) is None  # second failure: 1 s backoff
    loop = ActivityLoop(engine)
    assert loop.tick(clock.now()) <= clock.now() + 1.0  # the loop will wake the queue when it ends
    versions = engine.notifier.versions(["wf:q"])
    clock.advance(1.0)
    loop.tick(clock.now())
    assert engine.notifier.versions(["wf:q"]) != versions  # long-polls on the queue are woken
    assert _claim(engine, wid)["id"] == "b1"
    with pytest.raises(BadRequest):
        engine.submit_commands("b1", wid, BAD)
    clock.advance(1.5)
    assert _claim(engine, wid) is None  # third failure: 2 s
    clock.advance(0.5)
    assert _claim(engine, wid)["id"] == "b1"
    engine.submit_commands("b1", wid, [{"type": "ScheduleTimer", "seq": 1, "duration_secs": 0}])
    assert engine.get_workflow("b1")["dispatch_failures"] == 0  # a good batch resets the count
    engine.fire_due_timers()
    assert _claim(engine, wid)["id"] == "b1"


def test_other_workflows_are_not_delayed(engine, clock):
    wid = engine.register_worker(identity="w", queue="q")
    engine.start_workflow(workflow_type="T", workflow_id="bad", task_queue="q")
    for _ in range(2):
        _claim(engine, wid)
        with pytest.raises(BadRequest):
            engine.submit_commands("bad", wid, BAD)
    engine.start_workflow(workflow_type="T", workflow_id="good", task_queue="q")
    assert _claim(engine, wid)["id"] == "good"
