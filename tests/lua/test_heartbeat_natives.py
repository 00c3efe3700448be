"""The Lua worker's heartbeat thread (assay/lua/worker.py Heartbeat) on a fake clock: on an engine that counts
polls as heartbeats it beats only every idle interval while every Lua state sits in a poll, and every
interval as soon as one holds work; otherwise always every interval."""

from __future__ import annotations

import pytest

from assay.lua import worker as lw
from tests.helpers import FakeTicks


@pytest.fixture
def beats(monkeypatch):
    clock = [0.0]
    sent: list[float] = []

    class Client:
        def __init__(self, *a, **kw) -> None:
            pass

        def request(self, method, url, body, headers):
            sent.append(clock[0])

            class R:
                status = 200
                body = b"{}"

            return R()

        def close(self) -> None:
            pass

    monkeypatch.setattr(lw, "HttpClient", Client)
    monkeypatch.setattr(lw.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(lw, "POLLING", lw.Polling())
    return clock, sent


def run(hb: lw.Heartbeat, ticks: FakeTicks) -> None:
    hb.done = ticks  # type: ignore[assignment]
    hb._run()


@pytest.mark.parametrize(("idle_interval", "polling", "expected"), [
    (300.0, 2, [300.0]),  # both states in a poll: idle, one beat in 500 s
    (300.0, 1, [5.0 * k for k in range(1, 101)]),  # one state runs a task: every 5 s
    (None, 2, [5.0 * k for k in range(1, 101)]),  # an engine that does not count polls: every 5 s
])  # fmt: skip
def test_idle_beats_are_rare_only_when_every_state_polls(beats, idle_interval, polling, expected):
    clock, sent = beats
    for _ in range(polling):
        lw.POLLING.enter()
    hb = lw.Heartbeat("http://127.0.0.1:1/hb", {}, b"{}", 5.0, idle_interval, states=2)
    run(hb, FakeTicks(100, clock))
    assert sent == expected


def test_leaving_the_poll_with_a_task_brings_the_beat_back(beats):
    clock, sent = beats
    lw.POLLING.enter()
    hb = lw.Heartbeat("http://127.0.0.1:1/hb", {}, b"{}", 5.0, 300.0, states=1)
    run(hb, FakeTicks(6, clock, lambda k: lw.POLLING.leave() if k == 4 else None))
    assert sent == [20.0, 25.0, 30.0]


def test_engine_calls_count_the_states_inside_a_poll(monkeypatch):
    seen: list[int] = []
    polling = lw.Polling()
    monkeypatch.setattr(lw, "POLLING", polling)

    class Client:
        def request(self, m, url, body, headers, t, interruptible=False):
            seen.append(polling.n)

            class R:
                status, body = 200, b"{}"

            return R()

    handle = lw.EngineHandle("http://127.0.0.1:1", {})
    handle.client = Client()  # type: ignore[assignment]
    natives = lw.WorkerNatives.__new__(lw.WorkerNatives)
    natives.engine_call(handle, "POST", "/poll", b"{}", 50, True)
    natives.engine_call(handle, "POST", "/workflow-tasks/x/commands", b"{}", 30, None)
    assert seen == [1, 0] and polling.n == 0
