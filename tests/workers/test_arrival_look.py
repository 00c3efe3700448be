"""Idle workers coming back (#17 goal 3): an arriving long poll whose queue some poll found empty less than
RECHECK_SECS ago, with no work come since, is held without a store read; any work (a bump), the safety
interval, a poll without wait, or an unknown worker makes it look. Both backends, on the FakeClock."""

from __future__ import annotations

from assay.engine.dispatch import RECHECK_SECS, WORKER_NAMESPACE_TTL_SECS
from tests.workers.test_idle_polls import StoreSpy


def register(engine, n: int = 1, namespace: str = "main") -> list[str]:
    return [
        engine.register_worker(identity=f"idle-{i}", queue="q", namespace=namespace, activities=["a"])
        for i in range(n)
    ]


def held_once(engine, clock, monkeypatch) -> list[float]:
    """Make every held wait a timed-out one that ends the poll (the clock passes its deadline)."""
    real_wait = engine.notifier.wait
    waits: list[float] = []

    def ends(since, timeout, *a, **kw):
        waits.append(timeout)
        w = real_wait(since, 0.0, *a, **kw)
        clock.advance(0.0005)
        return w

    monkeypatch.setattr(engine.notifier, "wait", ends)
    return waits


def test_a_thousand_arriving_idle_polls_within_a_second_cost_one_look(engine, clock, monkeypatch):
    """The budget: the first poll looks (a read); the 999 others of the same queue arriving within
    RECHECK_SECS read nothing and write nothing. Each poll's wait is only 1 ms of fake time."""
    ids = register(engine, 1000)
    for wid in ids:  # their namespaces are known from registration
        assert wid in engine.tasks.worker_namespaces
    spy = StoreSpy(engine.store, monkeypatch)
    held_once(engine, clock, monkeypatch)
    for wid in ids:
        got = engine.poll_tasks("q", wid, 0.0005, gone=lambda: False)
        assert list(got) == []
    assert spy.writes == 0
    assert spy.reads == 1  # the first arrival's (the fake clock moved 0.5 s in all: under RECHECK_SECS)


def test_work_since_the_last_look_makes_the_arriving_poll_look_and_claim(engine, clock, monkeypatch):
    from tests.engine.support import start

    a, b = register(engine, 2)
    held_once(engine, clock, monkeypatch)
    assert list(engine.poll_tasks("q", a, 0.0005, gone=lambda: False)) == []  # looked: empty
    start(engine, "wf-new", queue="q")  # bumps the queue's work key
    spy = StoreSpy(engine.store, monkeypatch)
    got = engine.poll_tasks("q", b, 30.0, workflows=True, activities=False, gone=lambda: False)
    assert [(k, t["id"]) for k, t in got] == [("workflow_task", "wf-new")]
    assert spy.reads >= 1 and spy.writes == 1  # looked, then claimed


def test_after_the_safety_interval_the_arriving_poll_looks_again(engine, clock, monkeypatch):
    a, b = register(engine, 2)
    held_once(engine, clock, monkeypatch)
    engine.poll_tasks("q", a, 0.0005, gone=lambda: False)
    clock.advance(RECHECK_SECS + 0.1)
    spy = StoreSpy(engine.store, monkeypatch)
    engine.poll_tasks("q", b, 0.0005, gone=lambda: False)
    assert spy.reads >= 1 and spy.writes == 0


def test_a_poll_without_wait_always_looks(engine, clock, monkeypatch):
    a, b = register(engine, 2)
    held_once(engine, clock, monkeypatch)
    engine.poll_tasks("q", a, 0.0005, gone=lambda: False)
    spy = StoreSpy(engine.store, monkeypatch)
    assert list(engine.poll_tasks("q", b, 0.0)) == []
    assert spy.reads == 1 and spy.writes == 0


def test_a_worker_whose_namespace_is_unknown_or_old_looks(engine, clock, monkeypatch):
    """A worker registered on another instance (nothing known here), or known too long ago, looks: its
    namespace (what a hand-over checks) is read, not guessed."""
    a, b = register(engine, 2)
    held_once(engine, clock, monkeypatch)
    engine.poll_tasks("q", a, 0.0005, gone=lambda: False)
    engine.tasks.worker_namespaces.pop(b)  # as if registered elsewhere
    spy = StoreSpy(engine.store, monkeypatch)
    engine.poll_tasks("q", b, 0.0005, gone=lambda: False)
    assert spy.reads == 1
    assert engine.tasks.worker_namespaces[b][0] == "main"  # read by that look: known from now on
    engine.tasks.worker_namespaces[b] = ("main", clock.monotonic() - WORKER_NAMESPACE_TTL_SECS - 1)
    engine.poll_tasks("q", b, 0.0005, gone=lambda: False)
    assert spy.reads == 2


def test_a_held_poll_that_skipped_its_look_is_handed_work_of_its_namespace_only(engine, clock, monkeypatch):
    """The skipped look still leaves the poll knowing its namespace: a start in another namespace is
    not handed to it; one in its own is."""
    from tests.engine.support import start

    a, b = register(engine, 2)
    held_once(engine, clock, monkeypatch)
    engine.poll_tasks("q", a, 0.0005, gone=lambda: False)  # the queue's look: empty
    monkeypatch.undo()
    real_wait = engine.notifier.wait
    starts = []

    def work_arrives(since, timeout, *a, **kw):
        if not starts:
            starts.append(start(engine, "wf-other", queue="q", namespace="other"))
            starts.append(start(engine, "wf-main", queue="q"))
        return real_wait(since, 0.0, *a, **kw)

    monkeypatch.setattr(engine.notifier, "wait", work_arrives)
    got = engine.poll_tasks("q", b, 30.0, workflows=True, activities=False, gone=lambda: False)
    assert [(k, t["id"]) for k, t in got] == [("workflow_task", "wf-main")]  # handed over, not wf-other


def test_an_unknown_worker_id_is_not_remembered(engine, clock, monkeypatch):
    """An id the engine does not know polls the default namespace (namespaces are enforced) but is not remembered:
    should it register elsewhere under another namespace, its next poll reads that."""
    held_once(engine, clock, monkeypatch)
    spy = StoreSpy(engine.store, monkeypatch)
    for _ in range(2):
        assert list(engine.poll_tasks("q", "w-nobody", 0.0005, gone=lambda: False)) == []
    assert "w-nobody" not in engine.tasks.worker_namespaces
    assert spy.reads == 2 and spy.writes == 0


def test_a_departed_or_reaped_worker_is_forgotten(engine, clock, monkeypatch):
    """Deregistered, or reaped after ASSAY_WORKER_REAP_SECS of silence: its namespace is not trusted any
    more (a reaped id polls again as an unknown one, from the default namespace)."""
    a, b = register(engine, 2, namespace="other")
    engine.deregister_worker(a)
    assert a not in engine.tasks.worker_namespaces and b in engine.tasks.worker_namespaces
    clock.advance(engine.settings.worker_reap_secs + 1)
    assert engine.reap_workers() == 1
    assert b not in engine.tasks.worker_namespaces
