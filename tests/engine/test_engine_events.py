"""SSE fan-out (assay.protocol.SseEvent) and the background loops' tick(now) contract."""

from __future__ import annotations

import queue

import pytest

from assay.background import DispatchRecoveryLoop, SchedulerLoop, TimerLoop, default_loops
from assay.errors import Conflict
from tests.engine.support import Worker, act, start


def drain(sub) -> list[tuple[str, dict]]:
    out = []
    while True:
        try:
            item = sub.queue.get_nowait()
        except queue.Empty:
            return out
        out.append(item)


@pytest.fixture
def sub(engine):
    s = engine.broadcaster.subscribe()
    yield s
    engine.broadcaster.unsubscribe(s)


def kinds(sub) -> list[tuple[str, str]]:
    return [(t, d["workflow_id"]) for t, d in drain(sub)]


def test_lifecycle_events_are_published(engine, sub):
    w = Worker(engine)
    start(engine, "ok", input=1)
    assert kinds(sub) == [("workflow_started", "ok")]
    w.run("ok", act("a", 1), act("b", 2, max_attempts=1))
    assert kinds(sub) == [("workflow_running", "ok")]
    a = w.claim_activity()
    w.complete(a["id"], 1)
    b = w.claim_activity()
    w.fail(b["id"], "nope")
    events = drain(sub)
    assert [(t, d["workflow_id"]) for t, d in events] == [("task_completed", "ok"), ("task_failed", "ok")]
    assert events[0][1]["activity_id"] == a["id"] and events[0][1]["namespace"] == "main"
    engine.signal("ok", "go", None)
    assert kinds(sub) == [("signal_received", "ok")]
    w.run("ok", {"type": "CompleteWorkflow", "result": 2})
    ((t, data),) = drain(sub)
    assert t == "workflow_completed" and data["status"] == "COMPLETED" and data["workflow_type"] == "T"

    start(engine, "bad")
    w.run("bad", {"type": "FailWorkflow", "error": "x"})
    start(engine, "stop")
    engine.cancel("stop")
    start(engine, "kill")
    engine.terminate("kill")
    assert [k for k in kinds(sub) if k[0] != "workflow_started"] == [
        ("workflow_running", "bad"),
        ("workflow_failed", "bad"),
        ("workflow_cancelled", "stop"),
        ("workflow_terminated", "kill"),
    ]


def test_namespace_filtered_subscription(engine):
    team = engine.broadcaster.subscribe("team")
    try:
        start(engine, "m")
        start(engine, "t", namespace="team")
        assert kinds(team) == [("workflow_started", "t")]
    finally:
        engine.broadcaster.unsubscribe(team)


def test_nothing_is_published_for_a_rolled_back_batch(engine, sub, clock):
    w = Worker(engine)
    start(engine, "taken")
    clock.advance(1)
    start(engine, "wf")
    w.run("taken")
    w.claim()
    drain(sub)
    with pytest.raises(Conflict):
        w.submit(
            "wf",
            {"type": "StartChildWorkflow", "workflow_type": "K", "workflow_id": "kid"},
            {"type": "RecordSideEffect", "seq": 1, "value": 1},
            {"type": "ContinueAsNew", "workflow_id": "taken"},
        )
    assert drain(sub) == []


def test_a_full_subscriber_misses_events_without_blocking(engine):
    s = engine.broadcaster.subscribe()
    try:
        for i in range(s.queue.maxsize + 5):
            start(engine, f"wf-{i}")
        assert s.dropped == 5
    finally:
        engine.broadcaster.unsubscribe(s)


# --- loops: tick(now) returns the next due time ---------------------------------------------------------


def test_timer_loop_tick(engine, clock):
    w = Worker(engine)
    start(engine, "wf")
    loop = TimerLoop(engine)
    assert loop.tick(clock.now()) is None
    w.run("wf", {"type": "ScheduleTimer", "seq": 1, "duration_secs": 7})
    assert loop.tick(clock.now()) == clock.now() + 7
    clock.advance(7)
    assert loop.tick(clock.now()) is None
    assert w.claim()["history"][-1]["event_type"] == "TimerFired"


def test_dispatch_recovery_loop_tick(engine, clock):
    start(engine, "wf")
    Worker(engine).claim()
    loop = DispatchRecoveryLoop(engine)
    t_claim = clock.now()
    assert loop.tick(clock.now()) == t_claim + 30
    clock.advance(30)
    assert loop.tick(clock.now()) == clock.now() + 30  # nothing held: look again within one timeout
    assert Worker(engine).claim()["id"] == "wf"


def test_scheduler_loop_tick(engine, clock):
    engine.create_schedule({"name": "s", "workflow_type": "R", "cron_expr": "*/10 * * * * *"})
    loop = SchedulerLoop(engine)
    nxt = loop.tick(clock.now())
    assert nxt is not None and clock.now() < nxt <= clock.now() + 10
    clock.set(nxt)
    loop.tick(clock.now())
    assert len(engine.list_workflows(namespace="main")) == 1


def test_default_loops_tick_without_work(engine, clock):
    loops = default_loops(engine)
    assert {lp.name for lp in loops} >= {"timers", "activities", "dispatch", "workers", "scheduler"}
    for lp in loops:
        nxt = lp.tick(clock.now())
        assert nxt is None or nxt >= clock.now()


def test_an_idle_recovery_loop_still_catches_a_new_lease_on_time(engine, clock):
    loop = DispatchRecoveryLoop(engine)
    nxt = loop.tick(clock.now())  # no leases: it looks again within one timeout
    assert nxt is not None and nxt <= clock.now() + 30
    clock.advance(10)
    start(engine, "a")
    Worker(engine).claim()  # taken while the loop sleeps: expires at +40
    clock.set(nxt)
    nxt = loop.tick(clock.now())
    assert nxt == clock.now() + 10
    clock.set(nxt)
    loop.tick(clock.now())
    assert Worker(engine).claim()["id"] == "a"


def test_terminal_events_carry_completed_at_so_a_list_can_show_the_duration(engine, sub, clock):
    w = Worker(engine)
    start(engine, "quick")
    w.run("quick", {"type": "CompleteWorkflow", "result": 1})
    start(engine, "gone")
    engine.terminate("gone")
    events = {(t, d["workflow_id"]): d for t, d in drain(sub)}
    done = events[("workflow_completed", "quick")]
    assert done["completed_at"] == engine.get_workflow("quick")["completed_at"] is not None
    assert (
        events[("workflow_terminated", "gone")]["completed_at"] == engine.get_workflow("gone")["completed_at"]
    )
    assert "completed_at" not in events[("workflow_started", "quick")]  # only once it has finished
    assert "completed_at" not in events[("workflow_running", "quick")]
