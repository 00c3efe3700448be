"""Engine side of safe deploys: version markers, build ids, failed workflow tasks + the stuck flag, reset."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from assay.engine.deploy import STUCK_AFTER
from assay.errors import BadRequest, Conflict


def _types(engine, wf_id):
    return [e["event_type"] for e in engine.list_events(wf_id)]


def _start(engine, wf_id="w1", queue="q"):
    engine.start_workflow(workflow_type="T", workflow_id=wf_id, task_queue=queue, input={"n": 1})


def test_record_version_is_idempotent_and_consumes_no_seq(engine):
    wid = engine.register_worker(identity="w", queue="q")
    _start(engine)
    assert engine.claim_workflow_task("q", wid)["id"] == "w1"
    engine.submit_commands(
        "w1",
        wid,
        [
            {"type": "RecordVersion", "change_id": "fee", "version": 2},
            {"type": "RecordVersion", "change_id": "fee", "version": 5},
            {"type": "ScheduleActivity", "seq": 1, "name": "a"},
        ],
    )
    evs = engine.list_events("w1")
    markers = [e for e in evs if e["event_type"] == "VersionMarkerRecorded"]
    assert [m["payload"] for m in markers] == [{"change_id": "fee", "version": 2}]
    sched = [e for e in evs if e["event_type"] == "ActivityScheduled"]
    assert sched[0]["payload"]["activity_seq"] == 1
    act = engine.claim_activity_task("q", wid)
    assert act["id"] == sched[0]["payload"]["activity_id"]
    engine.complete_activity(act["id"], "ok")
    assert engine.claim_workflow_task("q", wid)["id"] == "w1"
    engine.submit_commands("w1", wid, [{"type": "RecordVersion", "change_id": "fee", "version": 9}])
    assert _types(engine, "w1").count("VersionMarkerRecorded") == 1


@pytest.mark.parametrize(
    "cmd",
    [
        {"type": "RecordVersion", "version": 1},
        {"type": "RecordVersion", "change_id": "", "version": 1},
        {"type": "RecordVersion", "change_id": "x", "version": "1"},
        {"type": "RecordVersion", "change_id": "x"},
    ],
)
def test_record_version_bad_input_is_rejected(engine, cmd):
    wid = engine.register_worker(identity="w", queue="q")
    _start(engine)
    engine.claim_workflow_task("q", wid)
    with pytest.raises(BadRequest) as e:
        engine.submit_commands("w1", wid, [cmd])
    assert "command 0" in e.value.message
    assert "VersionMarkerRecorded" not in _types(engine, "w1")


def test_build_ids_recorded_per_workflow_and_filterable(engine):
    old = engine.register_worker(identity="a", queue="q", build_id="aaa111")
    plain = engine.register_worker(identity="p", queue="q")  # an upstream worker sends none
    _start(engine, "b1")
    engine.claim_workflow_task("q", old)
    engine.submit_commands("b1", old, [{"type": "ScheduleTimer", "seq": 1, "duration_secs": 0}])
    engine.fire_due_timers()
    new = engine.register_worker(identity="b", queue="q", build_id="bbb222")
    engine.claim_workflow_task("q", new)
    engine.submit_commands("b1", new, [{"type": "ScheduleTimer", "seq": 2, "duration_secs": 0}])
    engine.fire_due_timers()
    assert engine.claim_workflow_task("q", plain)["id"] == "b1"
    assert engine.get_workflow("b1")["build_ids"] == ["aaa111", "bbb222"]
    _start(engine, "b2")
    assert [w["id"] for w in engine.list_workflows(namespace="main", build_id="bbb222")] == ["b1"]
    assert [w["id"] for w in engine.list_workflows(namespace="main", build_id="aaa")] == []


def test_failed_tasks_flag_stuck_and_an_accepted_batch_clears_it(engine, clock):
    wid = engine.register_worker(identity="w", queue="q")
    _start(engine, "s1")
    for i in range(STUCK_AFTER):
        task = engine.claim_workflow_task("q", wid)
        assert task is not None and task["id"] == "s1"
        out = engine.fail_workflow_task("s1", wid, f"nondeterministic workflow: try {i}")
        assert out["failures"] == i + 1
        clock.advance(60)
        rec = engine.get_workflow("s1")
        assert rec["status"] == "RUNNING"
        assert (rec["stuck_reason"] is not None) == (i + 1 >= STUCK_AFTER)
    rec = engine.get_workflow("s1")
    assert rec["stuck_reason"] == f"nondeterministic workflow: try {STUCK_AFTER - 1}"
    assert [w["id"] for w in engine.list_workflows(namespace="main", stuck=True)] == ["s1"]
    assert engine.claim_workflow_task("q", wid)["id"] == "s1"
    engine.submit_commands("s1", wid, [{"type": "CompleteWorkflow", "result": 1}])
    rec = engine.get_workflow("s1")
    assert rec["stuck_reason"] is None and rec["dispatch_failures"] == 0 and rec["status"] == "COMPLETED"
    assert engine.list_workflows(namespace="main", stuck=True) == []


def test_rejected_batches_count_as_failed_tasks(engine, clock):
    wid = engine.register_worker(identity="w", queue="q")
    _start(engine, "s2")
    for _ in range(STUCK_AFTER):
        engine.claim_workflow_task("q", wid)
        with pytest.raises(BadRequest):
            engine.submit_commands("s2", wid, [{"type": "ScheduleActivity", "seq": 1}])
        clock.advance(60)
    assert "rejected the commands" in engine.get_workflow("s2")["stuck_reason"]


def test_fail_task_without_the_lease_is_a_conflict(engine):
    wid = engine.register_worker(identity="w", queue="q")
    _start(engine, "s3")
    with pytest.raises(Conflict):
        engine.fail_workflow_task("s3", wid, "boom")
    assert engine.get_workflow("s3")["dispatch_failures"] == 0


def _run_to_two_activities(engine, wid):
    """history: 1 Started, 2 Sched a, 3 Done a, 4 Signal x, 5 Sched b (b still running), 6 Signal y."""
    _start(engine, "r1")
    engine.claim_workflow_task("q", wid)
    engine.submit_commands("r1", wid, [{"type": "ScheduleActivity", "seq": 1, "name": "a"}])
    act_a = engine.claim_activity_task("q", wid)
    engine.complete_activity(act_a["id"], "A")
    engine.signal("r1", "x", {"v": 1})
    engine.claim_workflow_task("q", wid)
    engine.submit_commands("r1", wid, [{"type": "ScheduleActivity", "seq": 2, "name": "b"}])
    engine.signal("r1", "y", {"v": 2})
    return act_a


def test_reset_to_event_copies_history_redelivers_signals_and_terminates_old(engine):
    wid = engine.register_worker(identity="w", queue="q")
    _run_to_two_activities(engine, wid)
    act_b = engine.claim_activity_task("q", wid)
    assert _types(engine, "r1") == [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "SignalReceived",
        "ActivityScheduled",
        "SignalReceived",
    ]
    new = engine.reset_workflow("r1", to_event=3)
    old = engine.get_workflow("r1")
    assert old["status"] == "FAILED" and old["error"] == f"reset to {new['id']}"
    assert old["reset_to"] == new["id"] and new["reset_from"] == "r1"
    assert engine.list_events("r1")[-1]["payload"] == {"error": f"reset to {new['id']}", "terminated": True}
    evs = engine.list_events(new["id"])
    assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5]
    assert [e["event_type"] for e in evs] == [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "SignalReceived",
        "SignalReceived",
    ]
    assert [e["payload"]["signal"] for e in evs[3:]] == ["x", "y"]
    assert evs[0]["payload"] == {"n": 1} and evs[2]["payload"]["result"] == "A"
    with pytest.raises(Conflict):  # the old run's in-flight activity was cancelled with it
        engine.complete_activity(act_b["id"], "B", wid)
    task = engine.claim_workflow_task("q", wid)
    assert task["id"] == new["id"] and len(task["history"]) == 5
    # the new run's code schedules b again under the same seq: nothing is skipped
    engine.submit_commands(new["id"], wid, [{"type": "ScheduleActivity", "seq": 2, "name": "b"}])
    act = engine.claim_activity_task("q", wid)
    assert act["workflow_id"] == new["id"] and act["seq"] == 2 and act["name"] == "b"


def test_reset_to_last_task_and_bad_points(engine):
    wid = engine.register_worker(identity="w", queue="q")
    _run_to_two_activities(engine, wid)
    with pytest.raises(BadRequest):
        engine.reset_workflow("r1", to_event=0)
    with pytest.raises(BadRequest):
        engine.reset_workflow("r1", to_event=99)
    with pytest.raises(BadRequest):
        engine.reset_workflow("r1")
    new = engine.reset_workflow("r1", to_last_task=True)  # the last wake-up: signal y (seq 6)
    assert len(engine.list_events(new["id"])) == 6
    with pytest.raises(BadRequest):  # the old run ended at event 7 (terminated)
        engine.reset_workflow("r1", to_event=7)
    again = engine.reset_workflow("r1", to_event=2)  # an ended run can be reset again: a new id
    assert again["id"] != new["id"] and again["reset_from"] == "r1"


def test_reset_reads_the_history_outside_the_writer_lock_and_again_when_it_moved(engine, monkeypatch):
    from tests.engine.test_sticky_history import TxSpy

    wid = engine.register_worker(identity="w", queue="q")
    _run_to_two_activities(engine, wid)
    spy = TxSpy(engine.core.store)
    monkeypatch.setattr(engine.core, "store", spy)
    reads = []
    real_read = spy.read

    @contextmanager
    def read():
        with real_read() as tx:
            yield tx
        reads.append(1)
        if len(reads) == 1:  # a signal lands between the reset's read and its write
            engine.signal("r1", "z", {"v": 3})

    monkeypatch.setattr(spy, "read", read)
    new = engine.reset_workflow("r1", to_event=3)
    assert spy.inside == [] and spy.outside == 2 and len(reads) == 2  # read again after the signal
    # the signal that came in between is redelivered like the others after event 3
    assert [e["payload"]["signal"] for e in engine.list_events(new["id"])[3:]] == ["x", "y", "z"]


def test_a_reset_of_a_workflow_that_never_stops_changing_is_a_conflict(engine, monkeypatch):
    from assay.engine import reset

    wid = engine.register_worker(identity="w", queue="q")
    _run_to_two_activities(engine, wid)
    store = engine.core.store
    real_read = store.read
    n = []

    @contextmanager
    def read():
        with real_read() as tx:
            yield tx
        n.append(1)
        engine.signal("r1", f"s{len(n)}", None)

    monkeypatch.setattr(store, "read", read)
    with pytest.raises(Conflict, match="kept changing"):
        engine.reset_workflow("r1", to_event=3)
    assert len(n) == reset.RESET_READ_ATTEMPTS
    monkeypatch.undo()
    assert engine.get_workflow("r1")["status"] == "RUNNING" and not engine.get_workflow("r1")["reset_to"]
