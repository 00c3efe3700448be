"""A held long-poll is answered by the notifier's wake-up when work arrives, not by a periodic re-check.

No wall clock: the spy below turns every notifier wait into an unbounded one (only a bump or close ends it)
and records why each wait ended, so a poll that answers at all was woken by the commit that made its work.
"""

from __future__ import annotations

import threading

import pytest

from tests.engine.support import Worker, act, start


class WaitSpy:
    def __init__(self, engine, monkeypatch) -> None:
        self.outcomes: list[bool] = []
        self.parked = threading.Event()
        real = engine.notifier.wait

        def unbounded(since, timeout):
            self.parked.set()
            moved = real(since, 3600.0)
            self.outcomes.append(moved)
            return moved

        monkeypatch.setattr(engine.notifier, "wait", unbounded)


@pytest.fixture
def spy(engine, monkeypatch):
    return WaitSpy(engine, monkeypatch)


def held_poll(engine, spy: WaitSpy, queue: str, worker_id: str, **kw):
    out: dict = {}
    spy.parked.clear()
    spy.outcomes.clear()

    def run():
        out["value"] = engine.poll(queue, worker_id, 30.0, **kw)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def answer(engine, t, out):
    t.join(30)
    if t.is_alive():  # never woken: free the thread before failing
        engine.notifier.close()
        t.join(5)
        pytest.fail("the held long-poll was not woken by the work that arrived")
    return out["value"]


@pytest.mark.parametrize("gone", [None, lambda: False], ids=["no-hangup-check", "hangup-check"])
def test_held_polls_are_woken_by_the_commit(engine, spy, gone):
    w = Worker(engine, queue="lp")
    t, out = held_poll(engine, spy, "lp", w.id, activities=False, gone=gone)
    assert spy.parked.wait(30)  # nothing to claim: the poll is parked in the notifier
    start(engine, "lp-1", queue="lp")
    kind, task = answer(engine, t, out)
    assert kind == "workflow_task" and task["id"] == "lp-1"
    assert spy.outcomes == [True]  # its one wait ended because the start bumped the queue's key

    engine.submit_commands("lp-1", w.id, [act("a")])  # releases the workflow task
    t, out = held_poll(engine, spy, "lp", w.id, workflows=False, gone=gone)
    kind, task = answer(engine, t, out)  # scheduled before the poll: claimed at once, no wait
    assert kind == "activity_task" and task["name"] == "a" and spy.outcomes == []

    t, out = held_poll(engine, spy, "lp", w.id, gone=gone)  # the combined poll: either kind wakes it
    assert spy.parked.wait(30)
    engine.complete_activity(task["id"], "done", w.id)
    kind, wf_task = answer(engine, t, out)
    assert kind == "workflow_task" and wf_task["id"] == "lp-1" and spy.outcomes == [True]


def test_work_on_another_queue_does_not_answer_a_held_poll(engine, spy):
    w = Worker(engine, queue="idle")
    t, out = held_poll(engine, spy, "idle", w.id)
    assert spy.parked.wait(30)
    start(engine, "other-1", queue="elsewhere")
    engine.notifier.close()  # shutdown answers a held poll, empty
    assert answer(engine, t, out) == (None, None)
    assert spy.outcomes == [False]  # its wait ended on close, not on the other queue's bump
