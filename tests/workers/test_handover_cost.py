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


def history_reads(engine) -> int:
    """Reads of a started workflow's first history after its hand-over: none where the starting
    transaction's own event is kept (SQLite), one on Postgres."""
    return 0 if engine.store.dialect == "sqlite" else 1


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
    assert spy.reads == history_reads(engine)  # the handed task's history at most, nothing else
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
    assert [t["id"] for _k, t in first.got[0]] == ["wf-1"] and spy.reads == history_reads(engine)
    wait_until(lambda: w_b.woken_by == LOOKOUT, 10, what="the second poll woken for the lookout")
    wait_until(lambda: dispatch._lookouts.get(key) is not None, 10, what="a new lookout")
    assert dispatch._lookouts[key].worker_id == b
    assert spy.reads == history_reads(engine)  # took the lookout over without looking
    engine.notifier.close()
    second.t.join(10)


def test_a_history_written_by_the_claiming_transaction_is_not_read_back_and_is_the_same(engine, monkeypatch):
    """A start handed over at once: its one event came from the start's own transaction (SQLite keeps it;
    Postgres reads it, its JSONB orders keys its own way). The task is the same either way, to the byte."""
    import json

    from assay import records

    (a,) = register(engine, 1)
    held = HeldPoll(engine, a)
    wait_until(lambda: waiters(engine) == 1, 10, what="a held poll")
    spy = StoreSpy(engine.store, monkeypatch)
    payload = {"zeta": [1, 2.5, {"b": None, "a": "é"}], "alpha": True, "mid": {"y": 1, "x": 2}}
    start(engine, "wf-h", queue="q", input=payload)
    held.t.join(10)
    ((_kind, task),) = held.got[0]
    assert spy.reads == history_reads(engine)
    read_back = [
        {k: e[k] for k in ("seq", "event_type", "payload", "timestamp")} for e in engine.list_events("wf-h")
    ]
    sent = records.workflow_task(task)["history"]
    assert json.dumps(sent) == json.dumps(read_back) and len(sent) == 1


def test_written_events_are_forgotten_when_a_step_is_undone(store):
    """A savepoint rolled back undid some writes: the transaction no longer vouches for any history."""
    import pytest

    from tests.store.records import wf

    with store.tx() as tx:
        tx.insert_workflow(wf("w1"), first_event=("WorkflowStarted", {"b": 1, "a": 2}))
        tx.append_event("w1", "Marker", {"k": [1]}, 5.0)
        got = tx.written_events("w1", 0, 2)
        if store.dialect != "sqlite":
            assert got is None  # (Postgres reads)
            return
        assert [(e["seq"], e["event_type"], e["payload"]) for e in got] == [
            (1, "WorkflowStarted", {"a": 2, "b": 1}),
            (2, "Marker", {"k": [1]}),
        ]
        assert tx.written_events("w1", 1, 2) == got[1:]
        assert tx.written_events("w1", 0, 3) is None  # seq 3 was not written here
        with pytest.raises(RuntimeError), tx.savepoint():
            tx.append_event("w1", "Marker", {}, 6.0)
            raise RuntimeError("undo")
        assert tx.written_events("w1", 0, 2) is None
