"""get_version end to end (runs when the engine knows the RecordVersion command, see the board / #20):
a workflow started under v1 keeps its path after a v2 deploy, new starts take the v2 path."""

from __future__ import annotations

import pytest

from tests.helpers import http, wait_until
from tests.lua.e2e import event_types, events, signal, start, wait_status
from tests.python.e2e import PY_WORKER, PyWorker

pytestmark = pytest.mark.e2e


def engine_knows_record_version(engine) -> bool:
    status, spec, _ = http("GET", engine.api + "/openapi.json")
    return status == 200 and "RecordVersion" in str(spec)


def run_versioning_scenario(engine, logdir) -> None:
    q = "py-versions"
    v1 = PyWorker(PY_WORKER, engine.url, logdir, queue=q, env={"VERSIONED": "1"})
    v1.wait_ready()
    try:
        start(engine, "Versioned", "ver-old", None, queue=q)
        wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, "ver-old"), 15, what="v1 step")
    finally:
        assert v1.stop() == 0, v1.log()
    v2 = PyWorker(PY_WORKER, engine.url, logdir, queue=q, env={"VERSIONED": "2"})
    v2.wait_ready()
    try:
        start(engine, "Versioned", "ver-new", None, queue=q)
        wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, "ver-new"), 15, what="v2 step")
        signal(engine, "ver-old", "go")
        signal(engine, "ver-new", "go")
        old = wait_status(engine, "ver-old", worker=v2)
        new = wait_status(engine, "ver-new", worker=v2)
    finally:
        assert v2.stop() == 0, v2.log()
    assert old["result"] == {"step": "charged-v1", "v": 1}, old
    assert new["result"] == {"step": "charged-v2", "v": 2}, new
    markers = [e["payload"] for e in events(engine, "ver-new") if e["event_type"] == "VersionMarkerRecorded"]
    assert markers == [{"change_id": "charge-v2", "version": 2}]
    assert "VersionMarkerRecorded" not in event_types(engine, "ver-old")


def test_old_runs_keep_their_path_new_runs_take_the_new_one(engine, logdir):
    if not engine_knows_record_version(engine):
        pytest.skip("this engine has no RecordVersion command yet (deploy's engine side, #20)")
    run_versioning_scenario(engine, logdir)
