"""Sticky replay state of the Python worker (issue 17): a workflow's run stays suspended in a thread
between tasks and takes only the new events. Every task is also replayed from scratch over the full
history: the commands must be the same, task by task. Fallbacks (no state, a mismatch, paged histories)
fetch the full history; dropped and evicted runs end their threads."""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest

from assay import testing
from assay.workflow import ActivityError, Cancelled, registry, replay
from assay.workflow.sticky import Replayer, StickyCache
from tests.helpers import wait_until

mod = types.ModuleType("sticky_wfs")


def kitchen(ctx, inp):
    state = {"step": 0}
    ctx.register_query("progress", lambda: dict(state))
    token = ctx.side_effect("token", lambda: "tok-1")
    v = ctx.get_version("feature", 0, 2)
    ctx.upsert_search_attributes({"Stage": "start"})
    a = ctx.execute_activity("inc", 1)
    state["step"] = 1
    par = ctx.execute_parallel([("inc", 10), ("inc", 20), ("inc", 30)])
    ctx.upsert_search_attributes({"Stage": "parallel"})
    ctx.sleep(60)
    state["step"] = 2
    t_after_sleep = ctx.now().timestamp()
    go = ctx.wait_for_signal("go")
    got, maybe = ctx.signal_or_timeout("maybe", 30)
    rnd = ctx.random()
    kid = ctx.start_child_workflow("Kid", {"n": a}, workflow_id=ctx.workflow_id + "-kid")
    try:
        ctx.execute_activity("boom", None, max_attempts=1)
        err = None
    except ActivityError as e:
        err = str(e)
    late = ctx.side_effect("late", lambda: {"late": True})
    state["step"] = 3
    return {"token": token, "v": v, "a": a, "par": par, "t": t_after_sleep, "go": go, "maybe": [got, maybe],
            "rnd": rnd, "kid": kid, "err": err, "late": late}  # fmt: skip


def kid(ctx, inp):
    return ctx.execute_activity("inc", inp["n"]) * 100


CLEANED: list[str] = []


def waiter(ctx, inp):
    try:
        return ctx.wait_for_signal("never")
    except Cancelled:
        CLEANED.append(ctx.workflow_id)
        raise


def looper(ctx, n):
    ctx.execute_activity("inc", n)
    if n < 3:
        ctx.continue_as_new(n + 1)
    return n


def inc(actx, n):
    return n + 1


def boom(actx, _):
    raise RuntimeError("boom")


HANDLERS = {"Kitchen": kitchen, "Kid": kid, "Waiter": waiter, "Looper": looper}
ACTS = {"inc": inc, "boom": boom}


class StickyEngine(testing.Engine):
    """assay.testing's in-process engine whose worker keeps sticky runs: each workflow task is handed to
    the sticky run with only the events after the seq it has seen (`history_after`), as a sticky engine
    does; a from-scratch replay of the full history runs too, and the commands must be equal."""

    def __init__(self, capacity: int = 100, mismatch: set[str] | None = None) -> None:
        super().__init__(mod)
        self.workflows.update(HANDLERS)
        self.activities.update(ACTS)
        self.replayer = Replayer(StickyCache(capacity), self._fetch)
        self.seen: dict[str, int] = {}  # what the "engine" believes each workflow's sticky seq is
        self.mismatch = mismatch or set()  # workflows whose next task claims a wrong history_after
        self.compared = 0
        self.fetches: list[tuple[str, int, int | None]] = []

    def close(self) -> None:
        self.replayer.close()
        super().close()

    def _fetch(self, wid, after, upto):
        self.fetches.append((wid, after, upto))
        return [e for e in self.events(wid) if e["seq"] > after and (upto is None or e["seq"] <= upto)]

    def _run_workflow(self, task: dict[str, Any]) -> None:
        wid, full = task["workflow_id"], task["history"]
        last = max(e["seq"] for e in full)
        t = dict(task, history_last_seq=last)
        if wid in self.seen:
            after = self.seen[wid] - (1 if wid in self.mismatch else 0)
            t.update(history_after=after, history=[e for e in full if e["seq"] > after])
        handler = self.workflows.get(task["workflow_type"])
        expected = replay.run(handler, task)
        got, run = self.replayer.run(handler, t)
        assert got is not None
        assert (got.commands, got.summary, got.task_error) == (
            expected.commands,
            expected.summary,
            expected.task_error,
        ), f"task of {wid} at seq {last}"
        self.compared += 1
        self.engine.submit_commands(wid, self.worker_id, got.commands)
        self.replayer.keep(run, got, True)
        if run is not None and wid in self.replayer.cache:
            self.seen[wid] = last
        else:
            self.seen.pop(wid, None)


def sticky_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("assay-sticky-")]


@pytest.fixture
def no_leak():
    before = set(sticky_threads())
    yield
    wait_until(lambda: not (set(sticky_threads()) - before), 10, what="the sticky runs' threads to end")


def drive_kitchen(eng: StickyEngine, wid: str = "k1") -> Any:
    eng.start("Kitchen", {"x": 1}, workflow_id=wid)
    eng.advance(61)
    eng.signal(wid, "go", {"go": 1})
    return eng.result(wid)


def test_sticky_runs_produce_the_commands_of_a_replay_from_scratch(no_leak):
    with StickyEngine() as eng:
        out = drive_kitchen(eng)
        assert out["a"] == 2 and out["par"] == [11, 21, 31] and out["kid"] == 300
        assert out["go"] == {"go": 1} and out["maybe"] == [False, None] and out["late"] == {"late": True}
        assert out["err"] and "boom" in out["err"] and out["token"] == "tok-1" and out["v"] == 2
        assert eng.state("k1", "progress") == {"step": 3}
        assert eng.replayer.resumed >= 8 and eng.compared > eng.replayer.resumed
        assert eng.fetches == []  # every task continued the run it found, or started a new one
        assert len(eng.replayer.cache) == 0  # both workflows ended: nothing kept
        # the same workflow without sticky state: the same result
        plain = testing.Engine(mod)
        plain.workflows.update(HANDLERS)
        plain.activities.update(ACTS)
        with plain:
            assert drive_kitchen(plain) == out  # type: ignore[arg-type]


def test_a_mismatched_history_after_fetches_the_full_history_and_replays(no_leak):
    with StickyEngine(mismatch={"k2", "k2-kid"}) as eng:
        out = drive_kitchen(eng, "k2")
        assert out["par"] == [11, 21, 31] and out["kid"] == 300
        assert eng.fetches and all(f[0].startswith("k2") and f[1] == 0 for f in eng.fetches)
        assert eng.replayer.resumed == 0 and eng.replayer.fetched == len(eng.fetches)


def test_eviction_and_drops_end_the_runs_threads(no_leak):
    with StickyEngine(capacity=2) as eng:
        for i in range(5):
            eng.start("Waiter", workflow_id=f"w{i}")
        cache = eng.replayer.cache
        assert len(cache) == 2 and cache.evicted == 3 and "w4" in cache and "w0" not in cache
        wait_until(lambda: len(sticky_threads()) <= 2, 10, what="evicted runs to end")
        # an evicted workflow's next task: full history, replayed from scratch, then kept again
        eng.cancel("w0")
        assert eng.describe("w0")["status"] == "CANCELLED"
        assert [(w, a) for w, a, _ in eng.fetches] == [("w0", 0)]
        # cancelling a suspended run: its handler sees Cancelled, cleans up, and its thread ends
        eng.cancel("w4")
        assert eng.describe("w4")["status"] == "CANCELLED" and "w4" in CLEANED
        assert "w4" not in cache
        eng.replayer.close()  # a stopping worker
        assert len(cache) == 0


def test_continue_as_new_and_refused_commands_drop_the_run(no_leak):
    with StickyEngine() as eng:
        eng.start("Looper", 1, workflow_id="loop")
        assert eng.result("loop") == 3
        assert len(eng.replayer.cache) == 0
        # commands the engine refused: the run is dropped, not kept
        eng.start("Waiter", workflow_id="refused")
        run = eng.replayer.cache.take("refused")
        assert run is not None and run.parked
        eng.replayer.keep(run, replay.ReplayResult([], "suspended"), accepted=False)
        run.thread.join(10)
        assert not run.thread.is_alive()


def test_a_paged_first_task_fetches_the_rest_of_its_history(no_leak):
    calls = []
    events = [{"seq": 1, "event_type": "WorkflowStarted", "payload": {}, "timestamp": 1.0}]
    events += [
        {"seq": i, "event_type": "SignalReceived", "payload": {"signal": "s", "payload": i}, "timestamp": 2.0}
        for i in range(2, 6)
    ]

    def fetch(wid, after, upto):
        calls.append((wid, after, upto))
        return [e for e in events if after < e["seq"] <= (upto or 99)]

    def three_signals(ctx, _):
        return [ctx.wait_for_signal("s") for _ in range(3)]

    r = Replayer(StickyCache(5), fetch)
    task = {"workflow_id": "p", "workflow_type": "T", "history": events[:2], "history_next_after": 2,
            "history_last_seq": 4}  # fmt: skip
    res, run = r.run(three_signals, task)
    assert calls == [("p", 2, 4)]
    assert res.commands == [{"type": "CompleteWorkflow", "result": [2, 3, 4]}]
    assert res.commands == replay.run(three_signals, task, events[:4]).commands
    r.keep(run, res, True)
    assert len(r.cache) == 0  # the handler returned: nothing to keep


def test_the_worker_registers_sticky_and_fetches_a_history_it_does_not_hold(monkeypatch, no_leak):
    from tests.python.test_worker_dispatch_unit import FakeTransport, _worker

    monkeypatch.setattr(registry, "WORKFLOWS", {"W": waiter})
    events = [{"seq": 1, "event_type": "WorkflowStarted", "payload": {}, "timestamp": 1.0},
              {"seq": 2, "event_type": "WorkflowAwaitingSignal", "payload": {"signal": "never"}}]  # fmt: skip

    def answer(path, body):
        if path.startswith("/workflows/wx/events"):
            after = int(path.split("after=")[1].split("&")[0])
            return 200, [e for e in events if e["seq"] > after], b""
        return 200, None, b""

    t = FakeTransport(answer)
    w = _worker(t)
    w.cfg["sticky_cache"] = 3
    w.replayer = Replayer(StickyCache(3), w.fetch_events)
    task = {
        "workflow_id": "wx",
        "workflow_type": "W",
        "history": [],
        "history_after": 2,
        "history_last_seq": 2,
    }
    w.run_workflow_task(task)
    paths = [p for p, _ in t.calls]
    assert paths[0] == "/workflows/wx/events?after=0&limit=1000"
    assert paths[-1] == "/workflow-tasks/wx/commands"
    assert t.calls[-1][1]["commands"] == [{"type": "WaitForSignal", "name": "never"}]
    assert "wx" in w.replayer.cache  # suspended, kept for the next task
    w.replayer.close()
