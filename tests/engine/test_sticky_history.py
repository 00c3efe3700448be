"""Sticky workers (docs/design.md, "Workflow task histories and sticky workers"): the worker that holds a
workflow's replay state gets only the new events (`history_after`) on every dispatch path; any other
worker gets the full history (a sticky one paged, with `history_next_after`); a non-sticky worker's task
keeps the upstream shape; and no history is read while a write transaction is open."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from assay import records
from assay.engine import dispatch
from assay.protocol import HISTORY_AFTER, HISTORY_LAST_SEQ, HISTORY_NEXT_AFTER, CommandType
from tests.engine.support import Worker, act, start

SERVES = {"workflows": ["T"], "activities": ["a"]}  # what eager dispatch claims for the worker
UPSTREAM_TASK_KEYS = {
    "workflow_id",
    "workflow_type",
    "namespace",
    "task_queue",
    "input",
    "run_id",
    "parent_id",
    "search_attributes",
    "created_at",
    "attempt",
    "history",
}


def seqs(task) -> list[int]:
    return [e["seq"] for e in task["history"]]


def last_seq(engine, wf_id: str) -> int:
    return engine.get_workflow(wf_id)["last_seq"]


def one_activity_round(engine, w: Worker, wf_id: str, n: int) -> int:
    """Schedule activity n (the worker holds the task), run it: the workflow task is ready again."""
    w.submit(wf_id, act("a", seq=n))
    a = w.claim_activity()
    assert a is not None
    w.complete(a["id"], n)
    return a["id"]


def test_poll_gives_the_sticky_worker_only_the_new_events(engine):
    w = Worker(engine, sticky=True)
    start(engine, "s1")
    task = w.claim()
    assert task is not None
    # first task: no cached state anywhere -> full history, with the last seq it covers
    assert HISTORY_AFTER not in task and HISTORY_NEXT_AFTER not in task
    assert seqs(task) == [1] and task[HISTORY_LAST_SEQ] == 1
    seen = task[HISTORY_LAST_SEQ]
    for n in (1, 2, 3):
        one_activity_round(engine, w, "s1", n)
        task = w.claim()
        assert task is not None and task["id"] == "s1"
        last = last_seq(engine, "s1")
        assert task[HISTORY_AFTER] == seen
        assert task[HISTORY_LAST_SEQ] == last
        assert seqs(task) == list(range(seen + 1, last + 1))  # only what it has not seen
        seen = last
    wire = records.workflow_task(task)
    assert wire[HISTORY_AFTER] == task[HISTORY_AFTER] and wire[HISTORY_LAST_SEQ] == seen


def test_the_full_history_once_the_workflow_moved_to_another_worker(engine):
    a = Worker(engine, sticky=True)
    b = Worker(engine, sticky=True)
    plain = Worker(engine)
    start(engine, "mv")
    assert a.claim()[HISTORY_LAST_SEQ] == 1
    one_activity_round(engine, a, "mv", 1)
    task = b.claim()  # b never saw it: full history
    assert HISTORY_AFTER not in task and seqs(task) == list(range(1, last_seq(engine, "mv") + 1))
    one_activity_round(engine, b, "mv", 2)
    task = a.claim()  # a's state is behind (b ran a task since): full history again
    assert HISTORY_AFTER not in task and seqs(task)[0] == 1
    one_activity_round(engine, a, "mv", 3)
    task = plain.claim()  # a non-sticky worker: full history, upstream shape
    assert set(records.workflow_task(task)) == UPSTREAM_TASK_KEYS
    assert seqs(task) == list(range(1, last_seq(engine, "mv") + 1))
    one_activity_round(engine, plain, "mv", 4)
    task = a.claim()  # the non-sticky worker took the state away: full history
    assert HISTORY_AFTER not in task and seqs(task)[0] == 1
    with engine.store.read() as tx:
        wf = tx.get_workflow("mv")
    assert wf["sticky_worker_id"] == a.id and wf["sticky_seq"] == task[HISTORY_LAST_SEQ]


def test_a_non_sticky_worker_sees_the_upstream_task_shape_on_every_path(engine):
    w = Worker(engine, **SERVES)
    start(engine, "u1")
    task = w.claim()
    assert set(records.workflow_task(task)) == UPSTREAM_TASK_KEYS and seqs(task) == [1]
    w.submit("u1", act("a", seq=1))
    a = w.claim_activity()
    eager = engine.complete_activity(a["id"], 1, w.id, eager_workflow_task=True)
    assert set(records.workflow_task(eager)) == UPSTREAM_TASK_KEYS
    assert seqs(eager) == list(range(1, last_seq(engine, "u1") + 1))
    with engine.store.read() as tx:
        wf = tx.get_workflow("u1")
    assert wf["sticky_worker_id"] is None and wf["sticky_seq"] is None


def test_eager_workflow_task_and_batch_poll_carry_partial_histories(engine):
    w = Worker(engine, sticky=True, **SERVES)
    start(engine, "e1")
    start(engine, "e2")
    got = engine.claim_tasks("default", w.id, ("workflow_task",), 5)  # batch poll
    assert sorted(t["id"] for _k, t in got) == ["e1", "e2"]
    assert all(t[HISTORY_LAST_SEQ] == 1 and seqs(t) == [1] for _k, t in got)
    w.submit("e2", {"type": CommandType.CompleteWorkflow, "result": None})
    w.submit("e1", act("a", seq=1))
    a = w.claim_activity()
    task = engine.complete_activity(a["id"], 1, w.id, eager_workflow_task=True)  # eager hand-back
    assert task is not None and task["id"] == "e1"
    assert task[HISTORY_AFTER] == 1 and seqs(task) == list(range(2, last_seq(engine, "e1") + 1))
    # the commands route's eager next task (a side effect leaves the workflow dispatchable)
    out = engine.submit_commands(
        "e1",
        w.id,
        [{"type": CommandType.RecordSideEffect, "seq": 2, "name": "x", "value": 1}],
        eager_workflow_task=True,
    )
    nxt = out["workflow_task"]
    assert nxt is not None and nxt[HISTORY_AFTER] == task[HISTORY_LAST_SEQ]
    assert seqs(nxt) == list(range(task[HISTORY_LAST_SEQ] + 1, last_seq(engine, "e1") + 1)) and seqs(nxt)


def test_report_activities_eager_tasks_are_partial(engine):
    w = Worker(engine, sticky=True, **SERVES)
    start(engine, "r1")
    w.claim()
    w.submit("r1", act("a", seq=1))
    a = w.claim_activity()
    out = engine.report_activities(w.id, [{"id": a["id"], "result": 1}], eager_workflow_task=True)
    (task,) = out["workflow_tasks"]
    assert task[HISTORY_AFTER] == 1 and seqs(task) == list(range(2, last_seq(engine, "r1") + 1))


class HandOverSpy:
    """Notifier waits without a timeout (only a commit ends them), recording whether tasks were handed."""

    def __init__(self, engine, monkeypatch) -> None:
        self.parked = threading.Event()
        self.handed: list[bool] = []
        real = engine.notifier.wait

        def unbounded(since, timeout, *args, **kw):
            self.parked.set()
            w = real(since, 3600.0, *args, **kw)
            self.handed.append(bool(w.tasks))
            return w

        monkeypatch.setattr(engine.notifier, "wait", unbounded)


def test_a_held_poll_is_handed_a_partial_history(engine, monkeypatch):
    spy = HandOverSpy(engine, monkeypatch)
    w = Worker(engine, queue="ho", sticky=True)
    start(engine, "h1", queue="ho")
    assert w.claim()[HISTORY_LAST_SEQ] == 1
    w.submit("h1", act("a", seq=1))
    a = w.claim_activity()
    out: dict = {}
    t = threading.Thread(
        target=lambda: out.update(v=engine.poll("ho", w.id, 30.0, activities=False)), daemon=True
    )
    t.start()
    assert spy.parked.wait(30)
    w.complete(a["id"], 1)  # makes the workflow task ready: claimed for the held poll in this commit
    t.join(30)
    if t.is_alive():
        engine.notifier.close()
        t.join(5)
        pytest.fail("the held poll was not answered")
    kind, task = out["v"]
    assert spy.handed == [True]
    assert kind == "workflow_task" and task["id"] == "h1"
    assert task[HISTORY_AFTER] == 1 and seqs(task) == list(range(2, last_seq(engine, "h1") + 1))


def test_a_long_history_is_paged_for_a_sticky_worker(engine, monkeypatch):
    monkeypatch.setattr(dispatch, "HISTORY_PAGE_MAX", 3)
    w = Worker(engine, sticky=True)
    plain = Worker(engine)
    start(engine, "p1")
    w.claim()
    for n in (1, 2, 3):
        one_activity_round(engine, w, "p1", n)
        w.claim()
    one_activity_round(engine, w, "p1", 4)
    last = last_seq(engine, "p1")
    assert last > 6
    other = Worker(engine, sticky=True)
    task = other.claim()  # a sticky worker without the state: the first page, and where to go on
    assert seqs(task) == [1, 2, 3] and task[HISTORY_NEXT_AFTER] == 3 and task[HISTORY_LAST_SEQ] == last
    rest, after = [], task[HISTORY_NEXT_AFTER]
    while after < task[HISTORY_LAST_SEQ]:
        page = engine.list_events("p1", after, limit=3)
        assert page and len(page) <= 3
        rest += page
        after = page[-1]["seq"]
    assert seqs(task) + [e["seq"] for e in rest] == list(range(1, last + 1))
    other.submit("p1", act("a", seq=5))
    a = other.claim_activity()
    other.complete(a["id"], 5)
    task = plain.claim()  # a non-sticky worker is never paged
    assert seqs(task) == list(range(1, last_seq(engine, "p1") + 1)) and HISTORY_NEXT_AFTER not in task


class TxSpy:
    """Wraps the engine's store: records every list_events that runs while a write transaction is open
    (on the write transaction itself, or on a read transaction opened in the same thread meanwhile)."""

    def __init__(self, store) -> None:
        self._store = store
        self.local = threading.local()
        self.inside: list[str] = []
        self.outside = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _wrap(self, tx, write: bool):
        spy = self

        class Proxy:
            def __getattr__(self, name):
                return getattr(tx, name)

            def list_events(self, wf_id, *a, **kw):
                if write or getattr(spy.local, "writing", 0):
                    spy.inside.append(wf_id)
                else:
                    spy.outside += 1
                return tx.list_events(wf_id, *a, **kw)

        return Proxy()

    @contextmanager
    def tx(self):
        self.local.writing = getattr(self.local, "writing", 0) + 1
        try:
            with self._store.tx() as tx:
                yield self._wrap(tx, True)
        finally:
            self.local.writing -= 1

    @contextmanager
    def read(self):
        with self._store.read() as tx:
            yield self._wrap(tx, False)


@pytest.mark.parametrize("sticky", [False, True], ids=["plain", "sticky"])
def test_no_history_is_read_inside_a_write_transaction(engine, monkeypatch, sticky):
    spy = TxSpy(engine.core.store)
    monkeypatch.setattr(engine.core, "store", spy)
    hspy = HandOverSpy(engine, monkeypatch)
    w = Worker(engine, queue="tx", sticky=sticky, **SERVES)
    start(engine, "t1", queue="tx")
    assert engine.poll("tx", w.id, 0.0, activities=False)[1]["history"]  # poll
    w.submit("t1", act("a", seq=1))
    a = w.claim_activity()
    task = engine.complete_activity(a["id"], 1, w.id, eager_workflow_task=True)  # eager
    assert task["history"]
    w.submit("t1", act("a", seq=2))
    a = w.claim_activity()
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(v=engine.poll("tx", w.id, 30.0, activities=False)))
    t.start()
    assert hspy.parked.wait(30)
    w.complete(a["id"], 2)  # hand-over to the held poll
    t.join(30)
    assert not t.is_alive() and out["v"][1]["history"] and hspy.handed == [True]
    assert spy.inside == [] and spy.outside == 3
