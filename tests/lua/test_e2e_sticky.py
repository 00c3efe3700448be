"""End to end: a sticky Lua worker keeps each workflow's suspended run between tasks.

The engine hands it only the new events (history_after); a worker without the state (a restart, an
evicted state) gets or fetches the full history and replays it once. STARTS in the worker file counts
how often a handler began from its first line. Skipped while the engine does not advertise sticky
workers (its OpenAPI document has no `sticky` in RegisterWorker).
"""

from __future__ import annotations

import pytest

from assay.protocol import STICKY
from tests.helpers import http, wait_until
from tests.lua.e2e import WORKERS, Worker, signal, start, wait_status
from tests.lua.e2e import state as query

pytestmark = pytest.mark.e2e
SCRIPT = WORKERS / "sticky_worker.lua"
DEBUG = {"ASSAY_LOG_LEVEL": "debug"}


@pytest.fixture(autouse=True)
def needs_sticky_engine(engine):
    status, doc, _ = http("GET", engine.api + "/openapi.json")
    props = doc["components"]["schemas"]["RegisterWorker"]["properties"] if status == 200 else {}
    if STICKY not in props:
        pytest.skip("the engine does not offer sticky workers yet (no `sticky` in RegisterWorker)")


def state(engine, wf_id: str, name: str):
    got = query(engine, wf_id, name)
    return got["value"] if isinstance(got, dict) else None


def task_lines(worker: Worker, wf_id: str) -> list[str]:
    return [ln for ln in worker.log().splitlines() if f"workflow {wf_id} (" in ln and " command(s), " in ln]


def test_sticky_worker_gets_partial_histories(engine, logdir):
    q = "sticky-long"
    w = Worker(SCRIPT, engine.url, logdir, queue=q, env=DEBUG)
    try:
        w.wait_ready()
        start(engine, "Steps", "sticky-long-1", {"n": 25}, queue=q)
        wf = wait_status(engine, "sticky-long-1", timeout=60, worker=w)
        lines = task_lines(w, "sticky-long-1")
    finally:
        assert w.stop() == 0, w.log()
    assert wf["status"] == "COMPLETED", wf
    assert wf["result"]["total"] == sum(range(1, 26))
    assert wf["result"]["starts"] == 1  # the handler began once: every later task resumed it
    assert len(lines) >= 26, lines  # at least one task per activity result, plus the first
    assert "(replayed, 1 event(s))" in lines[0]
    assert all("(sticky, " in ln for ln in lines[1:]), lines
    assert state(engine, "sticky-long-1", "step") == 25  # query snapshots still recorded


def test_restarted_worker_replays_the_full_history_once(engine, logdir):
    q = "sticky-restart"
    a = Worker(SCRIPT, engine.url, logdir, queue=q, env=DEBUG)
    a.wait_ready()
    try:
        start(engine, "Steps", "sticky-restart-1", {"n": 12, "wait_at": 6}, queue=q)
        wait_until(lambda: state(engine, "sticky-restart-1", "step") == 6, 30, what="the workflow to wait")
    finally:
        assert a.stop() == 0, a.log()
    token = http("GET", engine.api + "/workflows/sticky-restart-1/events")[1]
    token = [e["payload"]["value"]["t"] for e in token if e["event_type"] == "SideEffectRecorded"]
    b = Worker(SCRIPT, engine.url, logdir, queue=q, env=DEBUG)
    try:
        b.wait_ready()
        signal(engine, "sticky-restart-1", "go", {"x": 1})
        wf = wait_status(engine, "sticky-restart-1", timeout=60, worker=b)
        lines = task_lines(b, "sticky-restart-1")
    finally:
        assert b.stop() == 0, b.log()
    assert wf["status"] == "COMPLETED", wf
    assert wf["result"]["total"] == sum(range(1, 13)) and wf["result"]["token"] == token[0]
    assert wf["result"]["starts"] == 1  # in B: one replay of the whole history, then resumed
    assert "(replayed, " in lines[0] and "(replayed, 1 event(s))" not in lines[0], lines
    assert all("(sticky, " in ln for ln in lines[1:]), lines


def test_evicted_state_is_rebuilt_from_the_events_route(engine, logdir):
    q = "sticky-evict"
    w = Worker(SCRIPT, engine.url, logdir, queue=q, env={**DEBUG, "ASSAY_WORKER_STICKY_CACHE": "1"})
    w.wait_ready()
    ids = ("evict-a", "evict-b")
    try:
        # two workflows take turns with a one-state cache: each task finds the other's state kept
        for wid in ids:
            start(engine, "Pingpong", wid, {"rounds": 3}, queue=q)
            wait_until(lambda wid=wid: state(engine, wid, "step") == 1, 30, what=f"{wid} to wait")
        for k in range(1, 4):
            for wid in ids:
                signal(engine, wid, "go", {"k": k, "wf": wid})
                if k < 3:
                    wait_until(
                        lambda wid=wid, k=k: state(engine, wid, "step") == k + 1, 30, what=f"{wid} step"
                    )
        done = [wait_status(engine, wid, timeout=30, worker=w) for wid in ids]
        lines = {wid: task_lines(w, wid) for wid in ids}
    finally:
        assert w.stop() == 0, w.log()
    for wid, wf in zip(ids, done, strict=True):
        assert wf["status"] == "COMPLETED", wf
        assert wf["result"]["got"] == [{"k": k, "wf": wid} for k in (1, 2, 3)]
        fetched = [ln for ln in lines[wid] if "no state kept: full history fetched" in ln]
        assert len(fetched) >= 3, lines[wid]  # every signal found the state evicted
