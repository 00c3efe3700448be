"""Schedule firing through engine.fire_due_schedules() on a FakeClock (docs/design.md, "Schedules"). Cron parsing
itself is tested in test_schedules_*.py."""

from __future__ import annotations

import pytest

from assay.engine.schedules import fired_workflow_id
from assay.errors import BadRequest, Conflict, NotFound
from tests.engine.support import Worker, status

EVERY_MINUTE = "0 * * * * *"


def make(engine, name="s", cron=EVERY_MINUTE, **kw):
    body = {"name": name, "workflow_type": "Report", "cron_expr": cron, "input": {"k": 1}, **kw}
    return engine.create_schedule(body)


def runs(engine, name="s"):
    return sorted(
        (
            w
            for w in engine.list_workflows(namespace=None, limit=None)
            if (w["search_attributes"] or {}).get("schedule") == name
        ),
        key=lambda w: (w["created_at"], w["id"]),
    )


def to_next(engine, clock, name="s", ns="main"):
    nxt = engine.get_schedule(ns, name)["next_run_at"]
    clock.set(nxt)
    return nxt


def test_a_new_schedule_does_not_fire_at_creation(engine, clock):
    s = make(engine)
    assert s["next_run_at"] > clock.now() and s["next_run_at"] % 60 == 0
    assert engine.fire_due_schedules() == 0
    clock.set(s["next_run_at"] - 0.5)
    assert engine.fire_due_schedules() == 0
    assert runs(engine) == []


def test_fires_at_its_due_time_and_moves_on(engine, clock):
    make(engine, task_queue="reports", namespace="team")
    due = to_next(engine, clock, ns="team")
    assert engine.fire_due_schedules() == 1
    assert engine.fire_due_schedules() == 0  # once per due time
    (run,) = runs(engine)
    assert run["id"] == fired_workflow_id("s", due) and run["run_id"] == f"run-{run['id']}"
    assert (run["namespace"], run["task_queue"], run["workflow_type"], run["input"]) == (
        "team",
        "reports",
        "Report",
        {"k": 1},
    )
    s = engine.get_schedule("team", "s")
    assert s["last_workflow_id"] == run["id"] and s["last_run_at"] == due and s["next_run_at"] == due + 60
    assert Worker(engine, queue="reports", namespace="team").claim()["id"] == run["id"]


def test_overlap_skip(engine, clock):
    make(engine, overlap_policy="skip")
    to_next(engine, clock)
    engine.fire_due_schedules()
    due2 = to_next(engine, clock)
    assert engine.fire_due_schedules() == 0  # the first run is still going
    assert len(runs(engine)) == 1 and engine.get_schedule("main", "s")["next_run_at"] == due2 + 60
    engine.terminate(runs(engine)[0]["id"])
    to_next(engine, clock)
    assert engine.fire_due_schedules() == 1 and len(runs(engine)) == 2


def test_overlap_allow_all(engine, clock):
    make(engine, overlap_policy="allow_all")
    for _ in range(3):
        to_next(engine, clock)
        engine.fire_due_schedules()
    assert [r["status"] for r in runs(engine)] == ["PENDING"] * 3


def test_overlap_cancel_old(engine, clock):
    make(engine, overlap_policy="cancel_old")
    to_next(engine, clock)
    engine.fire_due_schedules()
    first = runs(engine)[0]["id"]
    Worker(engine).claim()  # the first run is RUNNING
    to_next(engine, clock)
    assert engine.fire_due_schedules() == 1
    first_run, second = runs(engine)
    assert first_run["id"] == first and first_run["cancel_requested"] is True
    assert "WorkflowCancelRequested" in [e["event_type"] for e in engine.list_events(first)]
    assert second["status"] == "PENDING"


def test_overlap_queue_starts_after_the_running_one_ends(engine, clock):
    make(engine, overlap_policy="queue")
    to_next(engine, clock)
    engine.fire_due_schedules()
    first = runs(engine)[0]["id"]
    for _ in range(3):  # several fires while it runs collapse into one queued fire
        to_next(engine, clock)
        assert engine.fire_due_schedules() == 0
    assert engine.next_schedule_due() <= clock.now() + 1  # the loop keeps checking the queued fire
    w = Worker(engine)
    w.run(first, {"type": "CompleteWorkflow"})
    clock.advance(1)
    assert engine.fire_due_schedules() == 1
    assert engine.fire_due_schedules() == 0
    assert [r["status"] for r in runs(engine)] == ["COMPLETED", "PENDING"]


def test_pause_and_resume_without_backfill(engine, clock):
    make(engine)
    s = engine.set_schedule_paused("main", "s", True)
    assert s["paused"] is True
    clock.advance(600)  # ten due times pass while paused
    assert engine.fire_due_schedules() == 0
    s = engine.set_schedule_paused("main", "s", False)
    assert s["paused"] is False and s["next_run_at"] > clock.now()
    assert engine.fire_due_schedules() == 0  # no catch-up run for the paused period
    to_next(engine, clock)
    assert engine.fire_due_schedules() == 1


def test_patch_recomputes_next_run_at(engine, clock):
    make(engine, cron="0 0 * * * *")  # hourly
    hourly = engine.get_schedule("main", "s")["next_run_at"]
    s = engine.patch_schedule("main", "s", {"cron_expr": "*/5 * * * * *", "input": [2]})
    assert s["next_run_at"] < hourly and s["next_run_at"] - clock.now() <= 5 and s["input"] == [2]
    to_next(engine, clock)
    engine.fire_due_schedules()
    assert runs(engine)[0]["input"] == [2]
    with pytest.raises(BadRequest):
        engine.patch_schedule("main", "s", {"cron_expr": "not a cron"})
    with pytest.raises(BadRequest):
        engine.patch_schedule("main", "s", {"overlap_policy": "sometimes"})
    with pytest.raises(NotFound):
        engine.patch_schedule("main", "ghost", {"input": 1})


def test_catch_up_window(engine, clock):
    make(engine, "near")
    make(engine, "far", cron="0 0 * * * *")
    near_due = engine.get_schedule("main", "near")["next_run_at"]
    clock.set(near_due + 30)  # the engine was down 30 s: within the 60 s window, fires once
    assert engine.fire_due_schedules() == 1
    assert runs(engine, "near")[0]["id"] == fired_workflow_id("near", near_due)
    far_due = engine.get_schedule("main", "far")["next_run_at"]
    clock.set(far_due + 3600 * 5 + 61)  # down for hours: the missed fires are skipped
    engine.fire_due_schedules()
    assert runs(engine, "far") == []
    assert engine.get_schedule("main", "far")["next_run_at"] > clock.now()


def test_trigger_starts_a_run_now_and_keeps_the_schedule(engine, clock):
    s = make(engine)
    run = engine.trigger_schedule("main", "s")
    assert run["id"] == fired_workflow_id("s", clock.now()) and status(engine, run["id"]) == "PENDING"
    again = engine.trigger_schedule("main", "s")  # same second: still a unique id
    assert again["id"] != run["id"]
    assert engine.get_schedule("main", "s")["next_run_at"] == s["next_run_at"]
    with pytest.raises(NotFound):
        engine.trigger_schedule("main", "ghost")


def test_schedule_crud_errors(engine):
    make(engine)
    with pytest.raises(Conflict):
        make(engine)
    make(engine, namespace="other")  # same name, other namespace
    with pytest.raises(BadRequest):
        make(engine, "bad-tz", timezone="Mars/Base")
    with pytest.raises(BadRequest):
        make(engine, "bad-cron", cron="61 * * * * *")
    engine.delete_schedule("main", "s")
    with pytest.raises(NotFound):
        engine.delete_schedule("main", "s")
    assert [s["name"] for s in engine.list_schedules("other")] == ["s"]
