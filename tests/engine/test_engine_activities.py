"""Activities: completion fencing, retries with backoff, start_to_close / heartbeat timeouts, lost workers,
worker reaping (docs/design.md: Fencing, Activities, Leases)."""

from __future__ import annotations

import pytest

from assay.background import ActivityLoop, WorkerReaperLoop
from assay.errors import Conflict, NotFound
from tests.engine.support import Worker, act, activities, payloads, start, status, types


@pytest.fixture
def w(engine):
    return Worker(engine)


def scheduled(engine, w, *commands, wf_id="wf"):
    start(engine, wf_id)
    w.run(wf_id, *commands)
    return [a["id"] for a in activities(engine, wf_id)]


# --- complete / fail / heartbeat fencing --------------------------------------------------------------


def test_complete_appends_event_and_wakes_the_workflow(engine, w):
    scheduled(engine, w, act("x", 1))
    a = w.claim_activity()
    assert a["status"] == "RUNNING" and a["claimed_by"] == w.id
    w.complete(a["id"], {"out": [1]})
    rec = engine.get_activity(a["id"])
    assert rec["status"] == "COMPLETED" and rec["result"] == {"out": [1]} and rec["completed_at"] is not None
    (p,) = payloads(engine, "wf", "ActivityCompleted")
    assert p == {
        "activity_id": a["id"],
        "activity_seq": 1,
        "name": "x",
        "result": {"out": [1]},
        "error": None,
    }
    assert w.claim()["id"] == "wf"


def test_complete_fail_heartbeat_on_a_non_running_activity_conflict(engine, w):
    (a_id,) = scheduled(engine, w, act("x", 1))
    for call in (
        lambda: w.complete(a_id, 1),
        lambda: w.fail(a_id),
        lambda: engine.heartbeat_activity(a_id, None, w.id),
    ):
        with pytest.raises(Conflict):  # still PENDING: nobody claimed it
            call()
    w.claim_activity()
    w.complete(a_id, 1)
    events = engine.list_events("wf")
    for call in (
        lambda: w.complete(a_id, 2),
        lambda: w.fail(a_id),
        lambda: engine.heartbeat_activity(a_id, None, w.id),
    ):
        with pytest.raises(Conflict):  # already COMPLETED
            call()
    assert engine.list_events("wf") == events
    assert engine.get_activity(a_id)["result"] == 1
    with pytest.raises(NotFound):
        w.complete(a_id + 100, 1)


def test_complete_by_another_worker_is_a_conflict(engine, w):
    (a_id,) = scheduled(engine, w, act("x", 1))
    w.claim_activity()
    other = Worker(engine)
    with pytest.raises(Conflict):
        other.complete(a_id, "mine")
    assert engine.get_activity(a_id)["status"] == "RUNNING"
    engine.complete_activity(a_id, "anonymous")  # no worker id: accepted (upstream clients send none)
    assert engine.get_activity(a_id)["result"] == "anonymous"


def test_activity_of_a_finished_workflow_is_fenced(engine, w):
    (a_id,) = scheduled(engine, w, act("x", 1))
    w.claim_activity()
    engine.terminate("wf")
    with pytest.raises(Conflict):
        w.complete(a_id, 1)
    with pytest.raises(Conflict):
        engine.heartbeat_activity(a_id, "x", w.id)
    assert "ActivityCompleted" not in types(engine, "wf")


def _running_counts(engine) -> int:
    return sum(q.get("running_activities", 0) or 0 for q in engine.queue_stats("main"))


@pytest.mark.parametrize("report", ["complete", "fail", "heartbeat", "batch", "batch_fail"])
def test_a_discarded_result_leaves_the_activity_cancelled(engine, w, report):
    """The 409 for a result of a finished workflow's activity used to roll back the activity's
    cancellation with it: the activity stayed RUNNING (and counted as running in the queue stats)."""
    (a_id,) = scheduled(engine, w, act("x", 1))
    w.claim_activity()
    running = _running_counts(engine)
    engine.terminate("wf")
    assert engine.get_activity(a_id)["status"] == "RUNNING"  # the worker is told to stop; it answers later
    if report.startswith("batch"):
        item = {"id": a_id, "error": "boom"} if report == "batch_fail" else {"id": a_id, "result": 1}
        out = engine.report_activities(w.id, [item])
        assert [r["status"] for r in out["results"]] == [409]
    else:
        call = {
            "complete": lambda: w.complete(a_id, 1),
            "fail": lambda: w.fail(a_id),
            "heartbeat": lambda: engine.heartbeat_activity(a_id, "x", w.id),
        }[report]
        with pytest.raises(Conflict, match="discarded"):
            call()
    rec = engine.get_activity(a_id)
    assert rec["status"] == "CANCELLED" and rec["completed_at"] is not None and rec["result"] is None
    assert _running_counts(engine) == running - 1
    assert "ActivityCompleted" not in types(engine, "wf") and "ActivityFailed" not in types(engine, "wf")
    with pytest.raises(Conflict, match="CANCELLED"):  # a second report finds it settled
        w.complete(a_id, 2)


def test_heartbeat_records_details_and_reports_cancellation(engine, w):
    (a_id,) = scheduled(engine, w, act("x", 1))
    w.claim_activity()
    assert engine.heartbeat_activity(a_id, {"pct": 50}, w.id) == {"cancel_requested": False}
    rec = engine.get_activity(a_id)
    assert rec["heartbeat_details"] == {"pct": 50} and rec["last_heartbeat"] is not None
    engine.cancel("wf")
    assert engine.heartbeat_activity(a_id, None, w.id) == {"cancel_requested": True}


# --- retries (design.md "Activities") ---------------------------------------------------------------------------


def test_retry_backoff_is_honoured(engine, w, clock):
    (a_id,) = scheduled(
        engine, w, act("x", 1, max_attempts=4, initial_interval_secs=2, backoff_coefficient=3)
    )
    expected = [2, 6, 18]
    for attempt, delay in enumerate(expected, 1):
        a = w.claim_activity()
        assert a["id"] == a_id and a["attempt"] == attempt
        t_fail = clock.now()
        w.fail(a_id, f"err {attempt}")
        rec = engine.get_activity(a_id)
        assert rec["status"] == "PENDING" and rec["attempt"] == attempt + 1
        assert rec["scheduled_at"] == t_fail + delay and rec["claimed_by"] is None
        assert "ActivityFailed" not in types(engine, "wf")
        assert w.claim() is None  # a retry does not wake the workflow
        clock.advance(delay - 0.01)
        assert w.claim_activity() is None  # not claimable before its backoff ends
        clock.advance(0.01)
    a = w.claim_activity()
    assert a["attempt"] == 4
    w.fail(a_id, "last")
    assert engine.get_activity(a_id)["status"] == "FAILED"
    (p,) = payloads(engine, "wf", "ActivityFailed")
    assert p == {"activity_id": a_id, "activity_seq": 1, "name": "x", "error": "last", "final_attempt": 4}
    assert w.claim()["id"] == "wf"


def test_maximum_interval_caps_the_backoff(engine, w, clock):
    (a_id,) = scheduled(
        engine,
        w,
        act(
            "x", 1, max_attempts=10, initial_interval_secs=1, backoff_coefficient=10, maximum_interval_secs=5
        ),
    )
    delays = []
    for _ in range(4):
        w.claim_activity()
        t = clock.now()
        w.fail(a_id)
        delays.append(engine.get_activity(a_id)["scheduled_at"] - t)
        clock.advance(delays[-1])
    assert delays == [1, 5, 5, 5]


def test_huge_backoff_does_not_overflow(engine, w, clock):
    (a_id,) = scheduled(
        engine, w, act("x", 1, max_attempts=5, initial_interval_secs=1e300, backoff_coefficient=1e300)
    )
    for attempt in range(1, 5):  # coefficient ** attempt overflows a float: must not crash
        w.claim_activity()
        w.fail(a_id)
        rec = engine.get_activity(a_id)
        assert rec["attempt"] == attempt + 1 and rec["scheduled_at"] > clock.now()
        clock.set(rec["scheduled_at"])
    w.claim_activity()
    w.fail(a_id)
    assert engine.get_activity(a_id)["status"] == "FAILED"


@pytest.mark.parametrize("max_attempts", [0, 1])
def test_max_attempts_one_or_zero_means_no_retry(engine, w, max_attempts):
    (a_id,) = scheduled(engine, w, act("x", 1, max_attempts=max_attempts))
    w.claim_activity()
    w.fail(a_id)
    assert engine.get_activity(a_id)["status"] == "FAILED"
    assert payloads(engine, "wf", "ActivityFailed")[0]["final_attempt"] == 1


def test_non_retryable_errors(engine, w):
    ids = scheduled(
        engine,
        w,
        act("x", 1, max_attempts=5, non_retryable_errors=["ValidationError"]),
        act("y", 2, max_attempts=5),
    )
    w.claim_activity()
    w.fail(ids[0], "ValidationError: bad email")
    assert engine.get_activity(ids[0])["status"] == "FAILED"
    w.claim_activity()
    w.fail(ids[1], "boom", non_retryable=True)
    assert engine.get_activity(ids[1])["status"] == "FAILED"
    assert [p["final_attempt"] for p in payloads(engine, "wf", "ActivityFailed")] == [1, 1]


def test_retry_wakeup_bumps_the_activity_queue(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, initial_interval_secs=3))
    w.claim_activity()
    w.fail(a_id)
    loop = ActivityLoop(engine)
    before = engine.notifier.versions(["act:default"])
    nxt = loop.tick(clock.now())
    assert nxt <= clock.now() + 3
    assert engine.notifier.versions(["act:default"]) == before  # not due yet: nobody woken
    clock.advance(3)
    loop.tick(clock.now())
    assert engine.notifier.versions(["act:default"]) != before  # long-pollers wake when the backoff ends


# --- timeouts through the retry path ---------------------------------------------------------------------


def test_start_to_close_timeout_retries_then_fails(engine, w, clock):
    (a_id,) = scheduled(
        engine, w, act("x", 1, max_attempts=2, start_to_close_secs=10, initial_interval_secs=1)
    )
    w.claim_activity()
    clock.advance(9.9)
    assert engine.expire_activities() == 0
    clock.advance(0.1)
    assert engine.expire_activities() == 1
    rec = engine.get_activity(a_id)
    assert rec["status"] == "PENDING" and rec["attempt"] == 2 and "start_to_close" in rec["error"]
    with pytest.raises(Conflict):
        w.complete(a_id, "too late")  # the timed-out attempt is fenced off
    clock.advance(1)
    w.claim_activity()
    clock.advance(10)
    assert engine.expire_activities() == 1
    assert engine.get_activity(a_id)["status"] == "FAILED"
    (p,) = payloads(engine, "wf", "ActivityFailed")
    assert "start_to_close" in p["error"] and p["final_attempt"] == 2
    assert w.claim()["id"] == "wf"


def test_heartbeat_timeout_retries(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, heartbeat_timeout_secs=5, max_attempts=2))
    w.claim_activity()
    clock.advance(4)
    engine.heartbeat_activity(a_id, None, w.id)
    clock.advance(4)  # 8 s after the claim, 4 s after the beat
    assert engine.expire_activities() == 0
    clock.advance(1)
    assert engine.expire_activities() == 1
    rec = engine.get_activity(a_id)
    assert rec["status"] == "PENDING" and rec["attempt"] == 2 and "heartbeat" in rec["error"]


def test_activity_loop_enforces_timeouts(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, start_to_close_secs=3, max_attempts=1))
    w.claim_activity()
    loop = ActivityLoop(engine)
    nxt = loop.tick(clock.now())
    assert nxt <= clock.now() + 3
    clock.advance(3)
    loop.tick(clock.now())
    assert engine.get_activity(a_id)["status"] == "FAILED"


# --- lost workers and reaping ---------------------------------------------------------------------------


def test_silent_worker_with_heartbeat_interval_loses_its_activities_and_leases(engine, clock):
    start(engine, "wf")
    start(engine, "wf2")
    beat = Worker(engine, heartbeat_interval_secs=5)
    beat.run("wf", act("x", 1))
    a = beat.claim_activity()
    assert beat.claim()["id"] == "wf2"  # holds a workflow-task lease too
    clock.advance(14)
    engine.heartbeat_worker(beat.id)  # still alive
    clock.advance(14)
    assert engine.expire_activities() == 0 and engine.recover_leases() == []
    clock.advance(2)  # 16 s of silence > 3 missed beats (and the 10 s floor)
    assert engine.expire_activities() == 1
    assert "lost" in engine.get_activity(a["id"])["error"]
    assert engine.recover_leases() == ["wf2"]
    other = Worker(engine)
    assert other.claim()["id"] == "wf2"
    clock.advance(2)
    assert other.claim_activity()["id"] == a["id"]


def test_worker_without_heartbeat_interval_keeps_its_activity(engine, clock):
    start(engine, "wf")
    classic = Worker(engine)
    classic.run("wf", act("x", 1, start_to_close_secs=1000))
    a = classic.claim_activity()
    clock.advance(500)
    assert engine.expire_activities() == 0
    assert engine.get_activity(a["id"])["status"] == "RUNNING"


def test_reaping_workers(engine, clock):
    old = Worker(engine)
    clock.advance(60)
    fresh = Worker(engine)
    clock.advance(31)
    assert WorkerReaperLoop(engine).tick(clock.now()) == clock.now() - 31 + 90
    assert [x["id"] for x in engine.list_workers("main")] == [fresh.id]
    # a heartbeat from a reaped worker re-registers it (design.md "Leases")
    engine.heartbeat_worker(old.id, {"identity": "again", "queue": "default", "namespace": "main"})
    assert {x["id"] for x in engine.list_workers("main")} == {old.id, fresh.id}


def test_reaping_a_silent_worker_still_recovers_what_it_held(engine, clock):
    """A worker that declared a long heartbeat interval is reaped before it counts as lost: its activity
    must not be stranded in RUNNING."""
    start(engine, "wf")
    slow = Worker(engine, heartbeat_interval_secs=60)  # lost after 180 s, reaped after 90 s
    slow.run("wf", act("x", 1, start_to_close_secs=100_000))
    a = slow.claim_activity()
    for _ in range(40):
        clock.advance(5)
        engine.reap_workers()
        engine.expire_activities()
    assert engine.get_activity(a["id"])["status"] == "PENDING"
    assert status(engine, "wf") == "RUNNING"


def test_retries_due_at_the_same_instant_wake_every_queue(engine, clock):
    start(engine, "wf")
    beat = Worker(engine, heartbeat_interval_secs=5)
    beat.run("wf", act("a", 1, task_queue="qa"), act("b", 2, task_queue="qb"))
    assert engine.claim_activity_task("qa", beat.id) and engine.claim_activity_task("qb", beat.id)
    clock.advance(16)
    loop = ActivityLoop(engine)
    loop.tick(clock.now())  # the lost worker's two activities are re-queued with the same due time
    assert {a["scheduled_at"] for a in activities(engine, "wf")} == {clock.now() + 1}
    before = engine.notifier.versions(["act:qa", "act:qb"])
    clock.advance(1)
    loop.tick(clock.now())
    after = engine.notifier.versions(["act:qa", "act:qb"])
    assert after["act:qa"] != before["act:qa"] and after["act:qb"] != before["act:qb"]


def test_reaper_loop_does_not_spin_on_a_worker_it_must_keep(engine, clock):
    start(engine, "wf")
    slow = Worker(engine, heartbeat_interval_secs=60)
    slow.run("wf", act("x", 1))
    slow.claim_activity()
    clock.advance(100)  # past the reap age, but it still holds an activity: kept
    loop = WorkerReaperLoop(engine)
    nxt = loop.tick(clock.now())
    assert [x["id"] for x in engine.list_workers("main")] == [slow.id]
    assert nxt is not None and nxt >= clock.now() + 1


def test_deregister_gives_work_back_and_a_reregistered_worker_polls_again(engine, clock):
    start(engine, "wf")
    start(engine, "wf2")
    w = Worker(engine)
    w.run("wf", act("x", 1))
    a = w.claim_activity()
    assert w.claim()["id"] == "wf2"
    out = engine.deregister_worker(w.id)
    assert out == {"known": True, "leases_released": 1, "activities_released": 1}
    assert engine.get_activity(a["id"])["status"] == "PENDING"
    assert engine.list_workers("main") == []
    assert engine.poll("default", w.id) == (None, None)  # a departed worker is handed nothing
    # the same worker comes back (a heartbeat re-registers it, design.md "Leases"): it gets work again
    engine.heartbeat_worker(w.id, {"identity": "back", "queue": "default", "namespace": "main"})
    kind, task = engine.poll("default", w.id)
    assert kind == "workflow_task" and task["id"] == "wf2"


def test_combined_poll_does_not_starve_activities_behind_workflow_tasks(engine, clock):
    start(engine, "wf")
    w = Worker(engine)
    w.run("wf", act("x", 1))
    start(engine, "busy")
    got = []
    for i in range(6):  # a workflow task is always waiting (a signal storm on "busy")
        engine.signal("busy", "tick", i)
        kind, task = engine.poll("default", w.id)
        got.append(kind)
        if kind == "workflow_task":
            engine.submit_commands(task["id"], w.id, [])
    assert "activity_task" in got and "workflow_task" in got


def test_a_worker_that_just_took_work_is_not_lost_for_its_old_silence(engine, clock):
    """An idle worker on an engine that counts polls as heartbeats may have beaten long ago: it is lost for
    a task only after lost_after of silence since it took that task (claim time), not before."""
    start(engine, "wf")
    start(engine, "wf2")
    w = Worker(engine, heartbeat_interval_secs=5)  # lost after 15 s
    w.run("wf", act("x", 1))
    clock.advance(60)  # a minute without a heartbeat (idle, polling)
    a = w.claim_activity()
    assert w.claim()["id"] == "wf2"
    clock.advance(10)
    assert engine.expire_activities() == 0 and engine.recover_leases() == []
    engine.heartbeat_worker(w.id)  # busy: it beats again
    clock.advance(14)
    assert engine.expire_activities() == 0 and engine.recover_leases() == []
    clock.advance(2)  # 16 s since its last beat and 26 s since it took both: lost
    assert engine.expire_activities() == 1 and "lost" in engine.get_activity(a["id"])["error"]
    assert engine.recover_leases() == ["wf2"]


def test_polls_are_heartbeats_written_in_one_go(engine, clock):
    from assay.background import LIVENESS_FLUSH_SECS, LivenessLoop, WorkerReaperLoop, default_loops

    assert any(isinstance(lp, LivenessLoop) for lp in default_loops(engine))
    a, b, gone = Worker(engine), Worker(engine), Worker(engine)
    loop = LivenessLoop(engine)
    for _ in range(3):  # an idle minute: only polls, no heartbeat request
        clock.advance(30)
        engine.poll_tasks("default", a.id, 0.0)
        engine.poll_tasks("default", b.id, 0.0)
        assert loop.tick(clock.now()) == clock.now() + LIVENESS_FLUSH_SECS
    beats = {x["id"]: x["last_heartbeat"] for x in engine.list_workers("main")}
    assert beats[a.id] == beats[b.id] == clock.now() and beats[gone.id] == clock.now() - 90
    clock.advance(1)
    WorkerReaperLoop(engine).tick(clock.now())  # the silent one goes; the polling ones stay
    assert {x["id"] for x in engine.list_workers("main")} == {a.id, b.id}
    assert loop.tick(clock.now()) and engine.core.take_alive() == []  # nothing noted: nothing written


def test_noted_heartbeats_survive_a_failed_write(engine, clock, monkeypatch):
    w = Worker(engine)
    clock.advance(30)
    engine.poll_tasks("default", w.id, 0.0)
    noted = clock.now()
    calls = []
    real_tx = engine.core.store.tx

    def failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real_tx()

    monkeypatch.setattr(engine.core.store, "tx", failing_once)
    with pytest.raises(RuntimeError):
        engine.write_noted_heartbeats()
    monkeypatch.undo()
    clock.advance(5)
    assert engine.write_noted_heartbeats() == 1  # the note was kept for the next flush
    assert {x["id"]: x["last_heartbeat"] for x in engine.list_workers("main")}[w.id] == noted
