"""End to end: the Python worker keeps sticky replay state (issue 17) against a live engine. It registers
with `sticky: true`; with an engine that sends partial histories (`history_after`) it continues the
suspended runs, and with a cache of 1 for 3 workflows at once it falls back to fetching full histories.
On an engine without sticky histories the same workflows simply replay (the checks that need partial
histories are made when the engine's OpenAPI document has `history_after`)."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import http, wait_until
from tests.lua.e2e import events, signal, start, wait_status
from tests.python.e2e import WORKERS, PyWorker

pytestmark = pytest.mark.e2e

WORKER = WORKERS / "dispatch_worker.py"


def engine_sends_partial_histories(engine) -> bool:
    status, doc, _ = http("GET", engine.api + "/openapi.json")
    return status == 200 and "history_after" in str(doc)


@pytest.mark.parametrize("cache", [500, 1])
def test_sticky_worker_runs_workflows_with_and_without_its_cached_state(engine, logdir, cache):
    q = f"sticky-{cache}"
    w = PyWorker(
        WORKER, engine.url, logdir, queue=q,
        env={"CONCURRENCY": "2", "ASSAY_WORKER_STICKY_CACHE": str(cache), "ASSAY_LOG_LEVEL": "debug"},
    )  # fmt: skip
    w.wait_ready()
    ids = [f"{q}-{i}" for i in range(3)]
    try:
        threads = [
            threading.Thread(target=start, args=(engine, "PyLoop", wid, 4), kwargs={"queue": q})
            for wid in ids
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for wid in ids:
            wait_status(engine, wid, "RUNNING", worker=w)
        for wid in ids:
            signal(engine, wid, "go", {"w": wid})
        for wid in ids:
            wf = wait_status(engine, wid, worker=w)
            assert wf["status"] == "COMPLETED" and wf["result"] == {"total": 12, "signal": {"w": wid}}, wf
        # one left waiting for its signal (a suspended run in the cache) when the worker stops
        start(engine, "PyLoop", f"{q}-left", 1, queue=q)
        wait_until(
            lambda: any(e["event_type"] == "WorkflowAwaitingSignal" for e in events(engine, f"{q}-left")),
            15,
            what="the last workflow to wait for its signal",
        )
    finally:
        assert w.stop() == 0, w.log()
    log = w.log()
    assert "Traceback" not in log, log
    if engine_sends_partial_histories(engine):
        continued = log.count("sticky run continued")
        assert continued >= 1, log
        if cache == 500:  # every task after the first continued the run it found
            assert "fetching the full history" not in log, log
