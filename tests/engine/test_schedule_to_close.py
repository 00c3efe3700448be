"""schedule_to_close_secs: one deadline over every attempt of an activity, queued time included; past it the
activity fails for good with a timeout error (docs/design.md). Runs on SQLite and Postgres (the store fixture)."""

from __future__ import annotations

import pytest

from assay.background import ActivityLoop
from assay.errors import BadRequest, Conflict
from tests.engine.support import Worker, act, activities, payloads, start, types


@pytest.fixture
def w(engine):
    return Worker(engine)


def scheduled(engine, w, *commands, wf_id="wf"):
    start(engine, wf_id)
    w.run(wf_id, *commands)
    return [a["id"] for a in activities(engine, wf_id)]


def test_deadline_is_recorded_from_the_first_schedule(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, schedule_to_close_secs=30))
    rec = engine.get_activity(a_id)
    assert rec["schedule_to_close_secs"] == 30
    assert rec["deadline_at"] == pytest.approx(clock.now() + 30)


def test_queued_past_the_deadline_fails_without_running(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, schedule_to_close_secs=5, max_attempts=10))
    clock.advance(5)
    assert w.claim_activity() is None  # nobody may start it any more
    assert engine.expire_activities() == 1
    rec = engine.get_activity(a_id)
    assert rec["status"] == "FAILED" and rec["attempt"] == 1
    (p,) = payloads(engine, "wf", "ActivityFailed")
    assert "schedule_to_close 5s exceeded" in p["error"]
    assert w.claim()["id"] == "wf"  # the workflow wakes to see the failure


def test_running_past_the_deadline_fails_and_is_not_retried(engine, w, clock):
    (a_id,) = scheduled(
        engine, w, act("x", 1, schedule_to_close_secs=8, start_to_close_secs=100, max_attempts=5)
    )
    w.claim_activity()
    clock.advance(7.9)
    assert engine.expire_activities() == 0
    clock.advance(0.1)
    assert engine.expire_activities() == 1
    rec = engine.get_activity(a_id)
    assert rec["status"] == "FAILED" and rec["attempt"] == 1  # 4 attempts left, none used
    with pytest.raises(Conflict):
        w.complete(a_id, "too late")
    assert "schedule_to_close" in payloads(engine, "wf", "ActivityFailed")[0]["error"]


def test_deadline_spans_attempts(engine, w, clock):
    (a_id,) = scheduled(
        engine,
        w,
        act(
            "x",
            1,
            schedule_to_close_secs=10,
            max_attempts=100,
            initial_interval_secs=1,
            backoff_coefficient=1,
        ),
    )
    attempts = 0
    while True:
        a = w.claim_activity()
        if a is None:
            break
        attempts += 1
        clock.advance(2)
        w.fail(a["id"], "flaky")
        clock.advance(1)
        if attempts > 20:
            break
    rec = engine.get_activity(a_id)
    assert rec["status"] == "FAILED"
    assert 2 <= attempts < 10  # far fewer than max_attempts: the overall deadline ended it
    (p,) = payloads(engine, "wf", "ActivityFailed")
    assert "schedule_to_close 10s exceeded" in p["error"] and "flaky" in p["error"]


def test_without_the_option_nothing_changes(engine, w, clock):
    (a_id,) = scheduled(engine, w, act("x", 1, max_attempts=2))
    assert engine.get_activity(a_id)["deadline_at"] is None
    clock.advance(10_000)
    assert engine.expire_activities() == 0
    assert w.claim_activity()["id"] == a_id


def test_activity_loop_wakes_for_the_deadline(engine, w, clock):
    scheduled(engine, w, act("x", 1, schedule_to_close_secs=4))
    loop = ActivityLoop(engine)
    nxt = loop.tick(clock.now())
    assert nxt is not None and nxt <= clock.now() + 4
    clock.advance(4)
    loop.tick(clock.now())
    assert "ActivityFailed" in types(engine, "wf")


def test_bad_schedule_to_close_is_rejected(engine, w):
    start(engine, "wf")
    task = w.claim()
    with pytest.raises(BadRequest, match="schedule_to_close_secs"):
        w.submit(task["id"], act("x", 1, schedule_to_close_secs="soon"))
