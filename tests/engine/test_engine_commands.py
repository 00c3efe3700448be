"""Every worker command (docs/design.md, "Engine"): effects, events, idempotency,
atomic batches and lease fencing."""

from __future__ import annotations

import pytest

from assay.errors import BadRequest, Conflict
from tests.engine.support import Worker, act, activities, assert_gap_free, payloads, start, status, types


@pytest.fixture
def w(engine):
    return Worker(engine)


def test_start_appends_workflow_started_and_is_claimable(engine, w, clock):
    rec = start(engine, "wf", input={"n": 1})
    assert rec["status"] == "PENDING" and rec["run_id"] == f"run-wf-{int(clock.now())}"
    assert engine.list_events("wf")[0]["event_type"] == "WorkflowStarted"
    assert payloads(engine, "wf", "WorkflowStarted") == [{"n": 1}]
    task = w.claim()
    assert task["id"] == "wf" and task["previous_status"] == "PENDING" and status(engine, "wf") == "RUNNING"
    assert [h["event_type"] for h in task["history"]] == ["WorkflowStarted"]
    assert w.claim() is None


def test_duplicate_workflow_id_is_a_conflict(engine):
    start(engine, "dup")
    with pytest.raises(Conflict):
        engine.start_workflow(workflow_type="T", workflow_id="dup", namespace="other")


def test_schedule_activity(engine, w, clock):
    start(engine, "wf", queue="jobs")
    jw = Worker(engine, queue="jobs")
    jw.run("wf", act("charge", 1, input={"amount": 5}, max_attempts=7, start_to_close_secs=12.5))
    a = engine.list_events("wf")[-1]
    assert a["event_type"] == "ActivityScheduled"
    p = a["payload"]
    assert p["activity_seq"] == 1 and p["name"] == "charge" and p["input"] == {"amount": 5}
    assert p["task_queue"] == "jobs"  # no task_queue in the command: the workflow's own queue
    rec = engine.get_activity(p["activity_id"])
    assert rec["status"] == "PENDING" and rec["attempt"] == 1 and rec["max_attempts"] == 7
    assert rec["start_to_close_secs"] == 12.5 and rec["scheduled_at"] == clock.now()
    assert rec["initial_interval_secs"] == 1.0 and rec["backoff_coefficient"] == 2.0  # defaults
    assert jw.claim() is None  # scheduling does not re-dispatch the workflow
    claimed = jw.claim_activity()
    assert claimed["id"] == rec["id"] and claimed["input"] == {"amount": 5}


def test_schedule_activity_explicit_queue_and_idempotent_on_seq(engine, w):
    start(engine, "wf")
    w.run("wf", act("a", 1, task_queue="other"), act("b", 2))
    engine.signal("wf", "poke", None)
    w.run("wf", act("a", 1, task_queue="other", input="changed"), act("b", 2))  # a replay
    assert types(engine, "wf").count("ActivityScheduled") == 2
    first = engine.get_activity(payloads(engine, "wf", "ActivityScheduled")[0]["activity_id"])
    assert first["task_queue"] == "other" and first["input"] is None  # first value wins


def test_schedule_timer_fires_after_its_duration(engine, w, clock):
    start(engine, "wf")
    t0 = clock.now()
    w.run("wf", {"type": "ScheduleTimer", "seq": 1, "duration_secs": 10})
    (p,) = payloads(engine, "wf", "TimerScheduled")
    assert p["timer_seq"] == 1 and p["fire_at"] == t0 + 10 and p["duration_secs"] == 10
    assert isinstance(p["timer_id"], int)
    clock.advance(9.9)
    assert engine.fire_due_timers() == 0
    assert w.claim() is None
    clock.advance(0.1)
    assert engine.fire_due_timers() == 1
    assert engine.fire_due_timers() == 0  # fired once
    assert payloads(engine, "wf", "TimerFired") == [{"timer_seq": 1, "fire_at": t0 + 10}]
    assert w.claim()["id"] == "wf"


def test_schedule_timer_is_idempotent_on_seq(engine, w, clock):
    start(engine, "wf")
    w.run("wf", {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    engine.signal("wf", "x", None)
    w.run("wf", {"type": "ScheduleTimer", "seq": 1, "duration_secs": 500})
    assert types(engine, "wf").count("TimerScheduled") == 1
    clock.advance(5)
    assert engine.fire_due_timers() == 1


def test_zero_duration_timer_fires_on_next_step(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "ScheduleTimer", "seq": 1})
    assert engine.fire_due_timers() == 1


def test_wait_for_signal_records_the_wait_without_dispatch(engine, w):
    start(engine, "wf")
    w.run(
        "wf",
        {"type": "ScheduleTimer", "seq": 1, "duration_secs": 60},
        {"type": "WaitForSignal", "name": "go", "timer_seq": 1},
    )
    assert payloads(engine, "wf", "WorkflowAwaitingSignal") == [{"signal": "go", "timer_seq": 1}]
    assert w.claim() is None
    engine.signal("wf", "go", {"ok": 1})
    assert payloads(engine, "wf", "SignalReceived") == [{"signal": "go", "payload": {"ok": 1}}]
    task = w.claim()
    assert task["history"][-1]["event_type"] == "SignalReceived"
    w.submit("wf", {"type": "WaitForSignal", "name": "again"})
    assert payloads(engine, "wf", "WorkflowAwaitingSignal")[-1] == {"signal": "again"}


def test_record_side_effect_first_value_wins_and_redispatches(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "RecordSideEffect", "seq": 1, "name": "rand", "value": 4})
    assert payloads(engine, "wf", "SideEffectRecorded") == [
        {"side_effect_seq": 1, "name": "rand", "value": 4}
    ]
    # the handler must re-run with the cached value
    w.run("wf", {"type": "RecordSideEffect", "seq": 1, "name": "rand", "value": 5})
    assert payloads(engine, "wf", "SideEffectRecorded") == [
        {"side_effect_seq": 1, "name": "rand", "value": 4}
    ]
    w.run("wf", {"type": "RecordSideEffect", "seq": 2, "name": "nil", "value": None})
    assert payloads(engine, "wf", "SideEffectRecorded")[-1] == {
        "side_effect_seq": 2,
        "name": "nil",
        "value": None,
    }


def test_start_child_workflow(engine, w):
    start(engine, "parent", queue="pq", namespace="team", search_attributes={"a": 1})
    pw = Worker(engine, queue="pq", namespace="team")
    pw.run(
        "parent", {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "kid-1", "input": [1]}
    )
    child = engine.get_workflow("kid-1")
    assert child["parent_id"] == "parent" and child["namespace"] == "team" and child["task_queue"] == "pq"
    assert child["status"] == "PENDING" and child["input"] == [1] and child["workflow_type"] == "Kid"
    assert payloads(engine, "kid-1", "WorkflowStarted") == [[1]]
    assert payloads(engine, "parent", "ChildWorkflowStarted") == [
        {"child_workflow_id": "kid-1", "workflow_type": "Kid"}
    ]
    assert pw.claim()["id"] == "kid-1"  # the child is dispatched, the parent waits
    assert pw.claim() is None


def test_start_child_workflow_is_idempotent_for_the_same_parent(engine, w):
    start(engine, "parent")
    cmd = {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "kid", "task_queue": "kq"}
    w.run("parent", cmd)
    engine.signal("parent", "x", None)
    w.run("parent", cmd)
    assert types(engine, "parent").count("ChildWorkflowStarted") == 1
    assert types(engine, "kid") == ["WorkflowStarted"]
    assert engine.get_workflow("kid")["task_queue"] == "kq"


def test_start_child_with_an_id_owned_by_an_unrelated_workflow_fails_the_child(engine, w, clock):
    start(engine, "stranger", input="mine")
    clock.advance(1)
    start(engine, "parent")
    w.run("stranger")  # claim it out of the way
    w.run("parent", {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "stranger"})
    (p,) = payloads(engine, "parent", "ChildWorkflowFailed")
    assert p["child_workflow_id"] == "stranger" and p["error"]
    assert "ChildWorkflowStarted" not in types(engine, "parent")
    assert engine.get_workflow("stranger")["parent_id"] is None
    assert w.claim()["id"] == "parent"  # woken to see the failure


def test_upsert_search_attributes_rides_in_a_batch(engine, w):
    start(engine, "wf", search_attributes={"keep": 1, "over": "old"})
    w.run("wf", {"type": "UpsertSearchAttributes", "patch": {"over": "new", "n": 2}}, act("x", 1))
    sa = engine.get_workflow("wf")["search_attributes"]
    assert sa["keep"] == 1 and sa["over"] == "new" and sa["n"] == 2 and "assay_engine_version" in sa
    assert "ActivityScheduled" in types(engine, "wf")
    assert [r["id"] for r in engine.list_workflows(namespace="main", search={"n": 2})] == ["wf"]


def test_record_snapshot_keeps_the_latest_with_its_event_seq(engine, w):
    start(engine, "wf")
    w.run("wf", {"type": "RecordSnapshot", "state": {"progress": 1}}, act("x", 1))
    snap = engine.get_state("wf")
    assert snap["state"] == {"progress": 1} and snap["event_seq"] == 1  # recorded before the activity
    assert engine.get_state("wf", "progress")["value"] == 1
    engine.signal("wf", "s", None)
    w.run("wf", {"type": "RecordSnapshot", "state": {"progress": 2}})
    snap = engine.get_state("wf")
    assert snap["state"] == {"progress": 2} and snap["event_seq"] == 3


def test_complete_workflow(engine, w, clock):
    start(engine, "wf")
    w.run("wf", act("x", 1), {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    engine.signal("wf", "s", None)
    w.run("wf", {"type": "CompleteWorkflow", "result": {"total": 3}})
    rec = engine.get_workflow("wf")
    assert (
        rec["status"] == "COMPLETED" and rec["result"] == {"total": 3} and rec["completed_at"] == clock.now()
    )
    assert types(engine, "wf")[-1] == "WorkflowCompleted"
    assert payloads(engine, "wf", "WorkflowCompleted") == [{"total": 3}]
    (a,) = activities(engine, "wf")
    assert a["status"] == "CANCELLED"  # pending work of a finished workflow is cleaned up
    clock.advance(10)
    assert engine.fire_due_timers() == 0
    assert w.claim_activity() is None


def test_fail_workflow_with_and_without_message(engine, w):
    start(engine, "a")
    start(engine, "b")
    w.run("a", {"type": "FailWorkflow", "error": "bad input"})
    w.run("b", {"type": "FailWorkflow"})
    assert engine.get_workflow("a")["error"] == "bad input" and status(engine, "a") == "FAILED"
    assert payloads(engine, "a", "WorkflowFailed") == [{"error": "bad input"}]
    assert engine.get_workflow("b")["error"] == "workflow handler raised an error"


def test_cancel_workflow_command_cleans_up(engine, w, clock):
    start(engine, "wf")
    w.run("wf", act("x", 1), {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5})
    engine.signal("wf", "s", None)
    w.run("wf", {"type": "CancelWorkflow"})
    assert status(engine, "wf") == "CANCELLED" and types(engine, "wf")[-1] == "WorkflowCancelled"
    assert w.claim_activity() is None
    clock.advance(10)
    assert engine.fire_due_timers() == 0


def test_commands_after_a_terminal_command_are_ignored(engine, w):
    start(engine, "wf")
    w.run(
        "wf",
        {"type": "CompleteWorkflow", "result": 1},
        act("late", 1),
        {"type": "FailWorkflow", "error": "x"},
    )
    assert status(engine, "wf") == "COMPLETED"
    assert types(engine, "wf") == ["WorkflowStarted", "WorkflowCompleted"]


# --- atomic batches (design.md "A bad command batch") -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "NoSuchCommand"},
        {"type": "ScheduleActivity", "seq": 2},  # no name
        {"type": "ScheduleActivity", "seq": "two", "name": "x"},
        {"type": "ScheduleTimer", "seq": 3, "duration_secs": "soon"},
        {"type": "UpsertSearchAttributes", "patch": [1, 2]},
        {"type": "StartChildWorkflow", "workflow_type": "K"},
        "not an object",
        {"seq": 1},
    ],
)
def test_an_invalid_command_applies_nothing_and_releases_the_lease(engine, w, bad):
    start(engine, "wf", search_attributes={"v": 1})
    w.claim()
    before = engine.list_events("wf")
    with pytest.raises(BadRequest):
        w.submit("wf", act("x", 1), {"type": "UpsertSearchAttributes", "patch": {"v": 2}}, bad)
    assert engine.list_events("wf") == before
    assert engine.get_workflow("wf")["search_attributes"]["v"] == 1
    assert w.claim_activity() is None
    other = Worker(engine)
    assert other.claim()["id"] == "wf"  # the task went back to the queue at once


def test_a_batch_failing_while_applying_rolls_back_everything(engine, w, clock):
    start(engine, "taken")
    clock.advance(1)
    start(engine, "wf")
    w.run("taken")
    w.claim()
    with pytest.raises(Conflict):
        w.submit(
            "wf",
            act("x", 1),
            {"type": "RecordSideEffect", "seq": 1, "value": 1},
            {"type": "ContinueAsNew", "workflow_id": "taken"},
        )
    assert types(engine, "wf") == ["WorkflowStarted"] and status(engine, "wf") == "RUNNING"
    assert w.claim_activity() is None
    assert Worker(engine).claim()["id"] == "wf"
    assert_gap_free(engine, "wf")


# --- fencing and lease extension (design.md "Fencing", "Leases") ----------------------------------------


def test_a_stale_worker_batch_is_rejected_and_changes_nothing(engine, clock):
    start(engine, "wf")
    a, b = Worker(engine), Worker(engine)
    assert a.claim()["id"] == "wf"
    clock.advance(31)
    assert engine.recover_leases() == ["wf"]
    assert b.claim()["id"] == "wf"
    before = engine.list_events("wf")
    with pytest.raises(Conflict):
        a.submit("wf", {"type": "CompleteWorkflow", "result": "stale"})
    assert engine.list_events("wf") == before and status(engine, "wf") == "RUNNING"
    assert engine.get_workflow("wf")["dispatch_claimed_by"] == b.id  # b keeps its lease
    b.submit("wf", {"type": "CompleteWorkflow", "result": "fresh"})
    assert engine.get_workflow("wf")["result"] == "fresh"


def test_a_batch_for_a_terminated_workflow_is_rejected(engine, w):
    start(engine, "wf")
    w.claim()
    engine.terminate("wf", "stop")
    with pytest.raises(Conflict):
        w.submit("wf", act("x", 1))
    assert "ActivityScheduled" not in types(engine, "wf")


def test_a_batch_without_a_claim_is_rejected(engine, w):
    start(engine, "wf")
    with pytest.raises(Conflict):
        w.submit("wf", {"type": "CompleteWorkflow"})
    assert status(engine, "wf") == "PENDING"


def test_worker_heartbeat_extends_its_leases(engine, clock):
    start(engine, "wf")
    a = Worker(engine)
    a.claim()
    clock.advance(20)
    assert engine.heartbeat_worker(a.id)["leases"] == 1
    clock.advance(20)  # 40 s after the claim, 20 s after the heartbeat
    assert engine.recover_leases() == []
    assert Worker(engine).claim() is None
    clock.advance(11)
    assert engine.recover_leases() == ["wf"]
    with pytest.raises(Conflict):
        a.submit("wf", {"type": "CompleteWorkflow"})


def test_recovered_lease_is_redispatched_with_the_full_history(engine, clock):
    start(engine, "wf")
    a = Worker(engine)
    a.run("wf", act("x", 1))
    engine.signal("wf", "s", {"v": 1})
    a.claim()
    clock.advance(30.5)
    assert engine.recover_leases() == ["wf"]
    task = Worker(engine).claim()
    assert [h["event_type"] for h in task["history"]] == [
        "WorkflowStarted",
        "ActivityScheduled",
        "SignalReceived",
    ]
    assert task["history"][-1]["payload"] == {"signal": "s", "payload": {"v": 1}}


def test_dispatch_recovery_honours_settings_and_grace_after_start(store, clock, settings):
    from assay.engine import Engine

    fast = settings.replace(dispatch_timeout_secs=5.0)
    e1 = Engine(store, clock=clock, settings=fast)
    start(e1, "wf")
    Worker(e1).claim()
    clock.advance(100)  # the engine "was down" for a long time; a new engine starts now
    e2 = Engine(store, clock=clock, settings=fast)
    assert e2.recover_leases() == []  # leases from before the start get the full timeout from start
    clock.advance(4.9)
    assert e2.recover_leases() == []
    clock.advance(0.2)
    assert e2.recover_leases() == ["wf"]
    assert Worker(e2).claim()["id"] == "wf"
    e1.notifier.close()
    e2.notifier.close()


def test_claims_are_scoped_to_the_worker_namespace(engine):
    start(engine, "main-wf")
    start(engine, "team-wf", namespace="team")
    team = Worker(engine, namespace="team")
    main = Worker(engine)
    assert team.claim()["id"] == "team-wf"
    assert team.claim() is None
    main.run("main-wf", act("x", 1))
    assert team.claim_activity() is None
    assert main.claim_activity()["workflow_id"] == "main-wf"


def test_event_seq_is_gap_free_through_a_whole_run(engine, w, clock):
    start(engine, "wf")
    w.run("wf", act("a", 1), act("b", 2), {"type": "ScheduleTimer", "seq": 1, "duration_secs": 1})
    for _ in range(2):
        x = w.claim_activity()
        w.complete(x["id"], x["seq"])
    clock.advance(1)
    engine.fire_due_timers()
    engine.signal("wf", "s", None)
    w.run("wf", {"type": "CompleteWorkflow", "result": "ok"})
    assert_gap_free(engine, "wf")
    assert types(engine, "wf").count("ActivityCompleted") == 2
