"""What a hand-over leaves behind (#16): a task handed to a held poll (or claimed eagerly) is no new work
for the other polls of its queue, so they keep trusting their last look (no store read); the queue's
lookout leaving with a hand-over wakes another poll only when one may sleep past RECHECK_SECS, and that
poll takes the lookout over without looking. Both backends, on the FakeClock."""

from __future__ import annotations

import threading
import time

from assay.engine.dispatch import LOOKOUT
from tests.engine.support import start
from tests.helpers import wait_until
from tests.workers.test_arrival_look import held_once
from tests.workers.test_idle_polls import StoreSpy


def register(engine, n: int) -> list[str]:
    return [
        engine.register_worker(
            identity=f"w{i}", queue="q", namespace="main", workflows=["T"], activities=["a"]
        )
        for i in range(n)
    ]


class HeldPoll:
    """A workflow-task long poll held on its own thread (real notifier waits)."""

    def __init__(self, engine, wid: str) -> None:
        self.got: list = []
        self.engine = engine
        self.t = threading.Thread(target=self._run, args=(wid,), daemon=True)
        self.t.start()

    def _run(self, wid: str) -> None:
        self.got.append(
            list(self.engine.poll_tasks("q", wid, 30.0, workflows=True, activities=False, gone=lambda: False))
        )


def waiters(engine) -> int:
    return len(engine.notifier._waiters.get("wf:q") or ())


def test_a_start_handed_to_a_held_poll_leaves_the_queue_look_trusted(engine, clock, monkeypatch):
    """The start's task goes to the held poll; the next arriving poll of the queue reads nothing."""
    a, b = register(engine, 2)
    held = HeldPoll(engine, a)
    wait_until(lambda: waiters(engine) == 1, 10, what="a held poll")
    start(engine, "wf-1", queue="q")
    held.t.join(10)
    assert [(k, t["id"]) for k, t in held.got[0]] == [("workflow_task", "wf-1")]
    spy = StoreSpy(engine.store, monkeypatch)
    held_once(engine, clock, monkeypatch)
    assert list(engine.poll_tasks("q", b, 0.0005, workflows=True, activities=False, gone=lambda: False)) == []
    assert spy.reads == 0 and spy.writes == 0
    start(engine, "wf-2", queue="q")  # nobody held: real work for the queue, so the next poll looks
    spy.reads = 0
    got = engine.poll_tasks("q", b, 0.0005, workflows=True, activities=False, gone=lambda: False)
    assert [(k, t["id"]) for k, t in got] == [("workflow_task", "wf-2")] and spy.reads >= 1


def test_a_combined_poll_trusts_a_look_made_with_its_kinds_in_the_other_order(engine, clock, monkeypatch):
    """A combined poll alternates which kind it tries first; the look of one turn holds for the next."""
    a, b = register(engine, 2)
    engine.notifier.bump(["wf:q"])  # the two work keys at different versions
    held_once(engine, clock, monkeypatch)
    assert list(engine.poll_tasks("q", a, 0.0005, gone=lambda: False)) == []  # looked: empty
    spy = StoreSpy(engine.store, monkeypatch)
    assert list(engine.poll_tasks("q", b, 0.0005, gone=lambda: False)) == []
    assert spy.reads == 0


def test_the_lookout_leaving_with_a_hand_over_wakes_nobody_when_every_poll_wakes_soon(engine, monkeypatch):
    a, b = register(engine, 2)
    first = HeldPoll(engine, a)
    wait_until(lambda: waiters(engine) == 1, 10, what="the first held poll")
    second = HeldPoll(engine, b)
    wait_until(lambda: waiters(engine) == 2, 10, what="the second held poll")
    spy = StoreSpy(engine.store, monkeypatch)
    start(engine, "wf-1", queue="q")
    first.t.join(10)
    assert [t["id"] for _k, t in first.got[0]] == ["wf-1"]  # the oldest held poll
    assert spy.reads == 1  # the handed task's history (read after the commit), nothing else
    (w,) = engine.notifier._waiters["wf:q"]
    assert not w.woken and second.t.is_alive()  # still waiting: not woken to look
    engine.notifier.close()
    second.t.join(10)


def test_the_lookout_leaving_wakes_a_long_sleeper_to_take_over_without_looking(engine, monkeypatch):
    a, b = register(engine, 2)
    dispatch = engine.dispatch
    first = HeldPoll(engine, a)
    wait_until(lambda: waiters(engine) == 1, 10, what="the first held poll")
    second = HeldPoll(engine, b)
    wait_until(lambda: waiters(engine) == 2, 10, what="the second held poll")
    key = ("q", "main", ("workflow_task",))
    lookout = dispatch._lookouts[key]
    assert lookout.worker_id == a
    dispatch._long_ticks_until = time.monotonic() + 60  # as if some poll slept past RECHECK_SECS
    (w_b,) = [w for w in engine.notifier._waiters["wf:q"] if w.poll.worker_id == b]
    spy = StoreSpy(engine.store, monkeypatch)
    start(engine, "wf-1", queue="q")
    first.t.join(10)
    assert [t["id"] for _k, t in first.got[0]] == ["wf-1"] and spy.reads == 1  # its history
    wait_until(lambda: w_b.woken_by == LOOKOUT, 10, what="the second poll woken for the lookout")
    wait_until(lambda: dispatch._lookouts.get(key) is not None, 10, what="a new lookout")
    assert dispatch._lookouts[key].worker_id == b
    assert spy.reads == 1  # took the lookout over without looking
    engine.notifier.close()
    second.t.join(10)
