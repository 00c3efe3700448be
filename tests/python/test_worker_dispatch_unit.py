"""The Python worker's dispatch pieces without an engine: result batching (group commit), the eager fields
it asks for, and batch polls never claiming more tasks than it has free slots."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from assay.workflow import registry
from assay.workflow.results import ResultItem, ResultReporter
from assay.workflow.worker import Worker
from tests.helpers import FakeTicks, wait_until


class FakeDeliver:
    """Records each POST; the first one waits for `gate` (so others queue up behind it)."""

    def __init__(self, answers=None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.gate = threading.Event()
        self.answers = answers or {}

    def __call__(self, what, path, body):
        self.calls.append((path, body))
        if len(self.calls) == 1:
            assert self.gate.wait(10)
        if path in self.answers:
            return self.answers[path](body)
        if path == "/tasks/results":
            wts = [{"workflow_id": "wf-b", "history": []}] if body.get("eager_workflow_task") else []
            res = [{"id": it["id"], "status": 409 if it["id"] == 3 else 200} for it in body["results"]]
            res = [dict(r, error="task no longer held") if r["status"] == 409 else r for r in res]
            return 200, {"results": res, "workflow_tasks": wts}, b""
        return 200, ({"workflow_task": None} if body.get("eager_workflow_task") else None), b""


def _item(i: int, wf: str, ok: bool = True) -> ResultItem:
    return ResultItem(
        i, wf, f"activity #{i}", ok, result={"n": i} if ok else None, error=None if ok else "boom"
    )


def _report_in_thread(rep: ResultReporter, item: ResultItem, eager: bool = True) -> threading.Thread:
    t = threading.Thread(target=rep.report, args=(item,), kwargs={"eager": eager}, daemon=True)
    t.start()
    return t


def test_results_that_arrive_while_one_is_in_flight_go_together():
    d = FakeDeliver()
    rep = ResultReporter(d, lambda: "w-1")
    first = _item(1, "wf-a")
    t1 = _report_in_thread(rep, first)
    wait_until(lambda: len(d.calls) == 1, what="the first result to be in flight")
    later = [_item(2, "wf-b"), _item(3, "wf-c"), _item(4, "wf-b", ok=False)]
    ts = []
    for k, it in enumerate(later, 1):  # queued in this order behind the one in flight
        ts.append(_report_in_thread(rep, it))
        wait_until(lambda k=k: len(rep._pending) == k, what=f"{k} result(s) to queue")
    d.gate.set()
    for t in [t1, *ts]:
        t.join(10)
    assert [p for p, _ in d.calls] == ["/tasks/1/complete", "/tasks/results"]
    assert d.calls[0][1] == {"worker_id": "w-1", "result": {"n": 1}, "eager_workflow_task": True}
    assert d.calls[1][1] == {
        "worker_id": "w-1",
        "eager_workflow_task": True,
        "results": [{"id": 2, "result": {"n": 2}}, {"id": 3, "result": {"n": 3}}, {"id": 4, "error": "boom"}],
    }
    assert rep.batches_sent == 1
    assert [it.status for it in [first, *later]] == [200, 200, 409, 200]
    assert later[1].message == "task no longer held"
    # the workflow task the batch made ready goes to ONE slot that reported for that workflow
    assert later[0].workflow_tasks == [{"workflow_id": "wf-b", "history": []}]
    assert later[2].workflow_tasks == [] and first.workflow_tasks == []


def test_an_engine_without_batch_results_gets_single_reports():
    d = FakeDeliver({"/tasks/results": lambda body: (404, {"error": "no route"}, b"")})
    rep = ResultReporter(d, lambda: "w-1")
    t1 = _report_in_thread(rep, _item(1, "a"), eager=False)
    wait_until(lambda: len(d.calls) == 1)
    ts = [_report_in_thread(rep, _item(i, "a", ok=i != 3), eager=False) for i in (2, 3)]
    wait_until(lambda: len(rep._pending) == 2)
    d.gate.set()
    for t in [t1, *ts]:
        t.join(10)
    paths = [p for p, _ in d.calls]
    assert paths[:2] == ["/tasks/1/complete", "/tasks/results"]
    assert sorted(paths[2:]) == ["/tasks/2/complete", "/tasks/3/fail"]
    assert not rep.batches_supported
    assert all("eager_workflow_task" not in b for _, b in d.calls)


class FakeTransport:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict]] = []
        self.aborting = threading.Event()

    def abort(self) -> None:
        self.aborting.set()

    def call(self, method, path, body=None, **kw):
        self.calls.append((path, body))
        return self.answer(path, body)


def _worker(transport, concurrency=3, max_tasks=10) -> Worker:
    cfg = {"queue": "q", "concurrency": concurrency, "max_tasks": max_tasks, "wait_secs": 5.0,
           "min_backoff": 0.1, "max_backoff": 1.0}  # fmt: skip
    w = Worker(transport, cfg)  # type: ignore[arg-type]
    w.worker_id = "w-1"
    return w


@pytest.fixture
def handlers(monkeypatch):
    monkeypatch.setattr(registry, "WORKFLOWS", {"Two": lambda ctx, inp: ctx.execute_parallel(
        [("mine", 1), ("mine", 2), ("theirs", 3)])})  # fmt: skip
    monkeypatch.setattr(registry, "ACTIVITIES", {"mine": lambda actx, inp: inp})


def test_a_batch_poll_asks_for_no_more_tasks_than_free_slots(handlers):
    t = FakeTransport(lambda path, body: (200, {"tasks": []}, b""))
    w = _worker(t, concurrency=3, max_tasks=10)
    assert w.slots_free.acquire(blocking=False)  # one slot busy
    n = w._take_free_slots()
    assert n == 2
    w.poll_combined({"quick_empty": 0}, n)
    assert t.calls[-1][1]["max_tasks"] == 2
    w._free(n)
    w.cfg["max_tasks"] = 1  # ASSAY_WORKER_MAX_TASKS caps it too
    assert w._take_free_slots() == 1


def test_commands_ask_for_one_eager_activity_only_when_served(handlers):
    act = {"id": 7, "name": "mine", "workflow_id": "x", "input": 1, "attempt": 1}
    t = FakeTransport(lambda path, body: (200, {"activity_tasks": [act], "workflow_task": None}, b""))
    w = _worker(t)
    task = {"workflow_id": "x", "workflow_type": "Two", "history": [
        {"seq": 1, "event_type": "WorkflowStarted", "payload": {}}]}  # fmt: skip
    more = w.run_workflow_task(task)
    path, body = t.calls[-1]
    assert path == "/workflow-tasks/x/commands"
    assert body["eager_activities"] == 1 and body["eager_workflow_task"] is True
    assert more == [("activity_task", act)]
    # a batch scheduling only activities this worker does not serve asks for none
    assert w._eager_activities([{"type": "ScheduleActivity", "name": "theirs", "seq": 1}]) == 0
    assert (
        w._eager_activities([{"type": "ScheduleActivity", "name": "mine", "seq": 1, "task_queue": "z"}]) == 0
    )
    # stopping or on an engine without /poll: no eager fields at all
    w.legacy = True
    w.run_workflow_task(task)
    assert "eager_activities" not in t.calls[-1][1] and "eager_workflow_task" not in t.calls[-1][1]


# --- retry_after (issue 17): an empty poll answer may say when to poll again --------------------------
@pytest.mark.parametrize(
    "answer",
    [{"tasks": [], "retry_after": 2.5}, {"kind": None, "task": None, "retry_after": 2.5}],
)
def test_an_empty_poll_with_retry_after_waits_that_long_before_the_next(handlers, answer):
    polls: list[dict] = []
    waits: list[float] = []
    t = FakeTransport(lambda path, body: (polls.append(body), (200, answer, b""))[1])
    w = _worker(t)
    w.wait_retry = lambda secs: (waits.append(secs), w.stop.set() if len(waits) == 2 else None)  # type: ignore[method-assign]
    w.poll_loop()  # returns once stopped (after the second wait)
    assert polls[0]["retry_after"] is True and polls[0]["wait_secs"] == 5.0
    assert len(polls) == 2 and waits == [2.5, 2.5]  # one wait after each empty answer, then the next poll


def test_without_retry_after_no_wait_and_no_opt_in_for_a_short_poll(handlers):
    polls: list[dict] = []
    waits: list[float] = []
    t = FakeTransport(lambda path, body: (200, {"tasks": []}, b""))
    w = _worker(t)
    w.cfg["wait_secs"] = 0.0
    w.wait_retry = waits.append  # type: ignore[method-assign]
    for bad in (None, 0, -1, True, "3"):
        t.answer = lambda path, body, bad=bad: (
            polls.append(body),
            (200, {"tasks": []} if bad is None else {"tasks": [], "retry_after": bad}, b""),
        )[1]
        assert w.poll_combined({"quick_empty": 0}, 1) == []
    assert len(polls) == 5
    assert waits == [] and all("retry_after" not in p for p in polls)
    # a huge value is capped
    t.answer = lambda path, body: (200, {"tasks": [], "retry_after": 1e9}, b"")
    w.poll_combined({"quick_empty": 0}, 1)
    assert waits == [300.0]


def test_a_stop_cuts_a_retry_after_wait_short(handlers):
    t = FakeTransport(lambda path, body: (200, {"tasks": [], "retry_after": 3600}, b""))
    w = _worker(t)
    th = threading.Thread(target=w.poll_loop, daemon=True)
    th.start()
    wait_until(lambda: len(t.calls) == 1, what="the first poll")
    w.request_stop()
    th.join(10)
    assert not th.is_alive() and len(t.calls) == 1


def _beating_worker(monkeypatch, clock: list[float]) -> tuple[Any, list[tuple[float, str]]]:
    """A worker whose heartbeat transport records (fake time, path) of every beat; intervals 5 s busy,
    300 s idle; the module's monotonic clock reads `clock[0]`."""
    from assay.workflow import worker as worker_mod

    monkeypatch.setattr(worker_mod.time, "monotonic", lambda: clock[0])
    sent: list[tuple[float, str]] = []

    class HbTransport:
        def __init__(self, *a, **kw) -> None:
            pass

        def call(self, method, path, body=None, **kw):
            sent.append((clock[0], path))
            return 200, {"known": True}, b""

    monkeypatch.setattr(worker_mod, "Transport", HbTransport)
    w = _worker(FakeTransport(lambda path, body: (200, None, b"")))
    w.t.url, w.t.api_key = "http://127.0.0.1:1", None
    w.cfg.update(
        registration={"identity": "i", "queue": "q"}, heartbeat_interval=5.0, idle_heartbeat_interval=300.0
    )
    return w, sent


@pytest.mark.parametrize(
    ("poll_is_heartbeat", "held", "beats"),
    [
        (True, 0, 1),  # idle on an engine that counts polls: one beat in 500 s (every 300 s)
        (True, 1, 100),  # holding work: every 5 s
        (False, 0, 100),  # an engine that does not count polls: every 5 s, as always
    ],
)
def test_an_idle_worker_beats_rarely_when_polls_are_heartbeats(monkeypatch, poll_is_heartbeat, held, beats):
    clock = [1000.0]
    w, sent = _beating_worker(monkeypatch, clock)
    w.poll_is_heartbeat, w.held_tasks = poll_is_heartbeat, held
    w.heartbeat_loop(FakeTicks(100, clock))  # type: ignore[arg-type]
    assert [path for _, path in sent] == ["/workers/heartbeat"] * beats


def test_a_worker_that_takes_work_beats_again_at_once(monkeypatch):
    clock = [0.0]
    w, sent = _beating_worker(monkeypatch, clock)
    w.poll_is_heartbeat = True

    def took_work(k: int) -> None:
        if k == 4:  # 20 s in, a task was claimed
            w.held_tasks = 1

    w.heartbeat_loop(FakeTicks(6, clock, took_work))  # type: ignore[arg-type]
    assert [at for at, _ in sent] == [
        20.0,
        25.0,
        30.0,
    ]  # silent while idle, then every interval from the next tick
