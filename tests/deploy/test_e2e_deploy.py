"""Safe deploys end to end: a real engine, real `assay run` Lua workers, the real CLI.

v1 runs park after "reserve", waiting for signal "go". v2_unsafe inserts a fraud check without versioning;
v2 puts it behind ctx:get_version. The replay gate passes v1 and v2 and catches v2_unsafe; under v2 the v1
run keeps its path while new runs take the new one; under v2_unsafe a v1 run gets stuck, is listed by
--stuck, and continues once v2 is deployed; reset re-runs from a chosen event."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import assay_cmd, http, start_engine, subprocess_env, wait_until
from tests.lua.e2e import Worker, describe, event_types, events, signal, start, wait_status

HERE = Path(__file__).resolve().parent / "workers"
V1, V2, UNSAFE = HERE / "order_v1.lua", HERE / "order_v2.lua", HERE / "order_v2_unsafe.lua"
Q = "orders"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = start_engine(tmp_path_factory.mktemp("engine"), env={"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "2"})
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("workers")


def cli(engine, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*assay_cmd(), *args],
        env=subprocess_env({"ASSAY_ENGINE_URL": engine.url}),
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def worker(engine, logdir, script: Path, build: str | None = None) -> Worker:
    w = Worker(script, engine.url, logdir, queue=Q, env={"ASSAY_BUILD_ID": build} if build else None)
    w.wait_ready()
    return w


def parked(engine, wf_id: str) -> None:
    """Wait until the run waits for "go" (reserve done)."""
    wait_until(lambda: "WorkflowAwaitingSignal" in event_types(engine, wf_id), 30, what=f"{wf_id} to park")


def names(engine, wf_id: str) -> list[str]:
    return [e["payload"]["name"] for e in events(engine, wf_id) if e["event_type"] == "ActivityCompleted"]


def test_versioning_gate_stuck_and_reset(engine, logdir, tmp_path):
    w = worker(engine, logdir, V1)
    for i in (1, 3, 5):
        start(engine, "Order", f"o-{i}", {"sku": f"s{i}"}, queue=Q)
    for i in (1, 3, 5):
        parked(engine, f"o-{i}")
    w1_build = describe(engine, "o-1")["build_ids"]
    assert len(w1_build) == 1 and len(w1_build[0]) == 12  # default: sha256 of the worker file
    assert w.stop() == 0, w.log()

    # --- the replay gate -----------------------------------------------------------------------
    exp = cli(engine, "workflow", "export", "o-1")
    assert exp.returncode == 0, exp.stderr
    doc = json.loads(exp.stdout)
    assert doc["format"] == "assay-history/1" and doc["workflow"]["id"] == "o-1"
    hist = tmp_path / "o-1.json"
    hist.write_text(exp.stdout)
    ok = cli(engine, "replay", str(V1), "--history", str(hist), "-o", "json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad = cli(engine, "replay", str(UNSAFE), "--history", str(hist), "-o", "json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    res = json.loads(bad.stdout)["results"][0]
    awaiting = next(e["seq"] for e in doc["events"] if e["event_type"] == "WorkflowAwaitingSignal")
    assert res["ok"] is False and res["divergence"]["event_seq"] == awaiting
    assert "fraud_check" in res["divergence"]["code"] and "'go'" in res["divergence"]["history"]
    table = cli(engine, "replay", str(UNSAFE), "--type", "Order", "--status", "RUNNING", "-o", "table")
    assert table.returncode == 1 and table.stdout.count("DIVERGED") == 3, table.stdout
    good = cli(engine, "replay", str(V2), "--type", "Order", "--status", "RUNNING", "-o", "json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(json.loads(good.stdout)["results"]) == 3
    by_id = cli(engine, "replay", str(V2), "--workflow-id", "o-1", "--workflow-id", "o-3")
    assert by_id.returncode == 0, by_id.stdout + by_id.stderr
    # the gate wrote nothing: the histories are as they were
    assert events(engine, "o-1") == doc["events"]

    # --- an unsafe deploy: o-3 gets stuck -----------------------------------------------------------
    w = worker(engine, logdir, UNSAFE, build="unsafe-1")
    signal(engine, "o-3", "go")
    wait_until(lambda: describe(engine, "o-3")["stuck"], 60, what="o-3 to be flagged stuck")
    stuck = describe(engine, "o-3")
    assert stuck["status"] == "RUNNING" and stuck["stuck"]["failures"] >= 3
    assert "fraud_check" in stuck["stuck"]["reason"]
    listed = cli(engine, "workflow", "list", "--stuck", "-o", "json")
    assert [r["id"] for r in json.loads(listed.stdout)] == ["o-3"]
    assert "fraud_check" not in names(engine, "o-3")  # the bad code took no other path

    # --- recover o-5 with a reset under the unsafe build: it re-runs from event 2 (reserve again) -----
    signal(engine, "o-5", "go")
    before = events(engine, "o-5")
    rs = cli(engine, "workflow", "reset", "o-5", "--to-event", "2", "-o", "json")
    assert rs.returncode == 0, rs.stderr
    new_id = json.loads(rs.stdout)["id"]
    assert json.loads(rs.stdout)["reset_from"] == "o-5"
    old = wait_status(engine, "o-5")
    assert old["status"] == "FAILED" and old["error"] == f"reset to {new_id}" and old["reset_to"] == new_id
    done = wait_status(engine, new_id, worker=w)
    assert done["status"] == "COMPLETED", done
    assert done["result"]["path"] == "v2"  # the current code's path
    new_events = events(engine, new_id)
    assert [e["event_type"] for e in new_events[:2]] == [e["event_type"] for e in before[:2]]
    # reserve ran again (its completion was after the reset point), then everything after it
    assert names(engine, new_id) == ["reserve", "fraud_check", "charge"]
    assert any(e["event_type"] == "SignalReceived" and e["seq"] > 2 for e in new_events)  # re-delivered
    assert w.stop() == 0, w.log()

    # --- the fixed deploy: v1 runs keep their path, new runs take v2, the stuck run continues ---------
    w = worker(engine, logdir, V2, build="v2-1")
    start(engine, "Order", "o-2", {"sku": "s2"}, queue=Q)
    parked(engine, "o-2")
    signal(engine, "o-1", "go")
    signal(engine, "o-2", "go")
    r1 = wait_status(engine, "o-1", worker=w)
    r2 = wait_status(engine, "o-2", worker=w)
    r3 = wait_status(engine, "o-3", timeout=90, worker=w)
    assert r1["result"]["path"] == "v1" and names(engine, "o-1") == ["reserve", "charge"]
    # no marker for the change it skipped; a change point reached at the frontier takes the new path
    assert r1["result"]["patched"] is True
    m1 = [e["payload"] for e in events(engine, "o-1") if e["event_type"] == "VersionMarkerRecorded"]
    assert m1 == [{"change_id": "fraud-check-log", "version": 1}]
    assert r2["result"]["path"] == "v2" and names(engine, "o-2") == ["reserve", "fraud_check", "charge"]
    assert r2["result"]["patched"] is True
    markers = [e["payload"] for e in events(engine, "o-2") if e["event_type"] == "VersionMarkerRecorded"]
    assert markers == [
        {"change_id": "fraud-check", "version": 2},
        {"change_id": "fraud-check-log", "version": 1},
    ]
    assert r3["status"] == "COMPLETED" and r3["result"]["path"] == "v1" and r3["stuck"] is None
    assert set(r3["build_ids"]) >= {"unsafe-1", "v2-1"}
    listed = cli(engine, "workflow", "list", "--build-id", "unsafe-1", "-o", "json")
    assert {r["id"] for r in json.loads(listed.stdout)} >= {"o-3", new_id}
    assert json.loads(cli(engine, "workflow", "list", "--stuck", "-o", "json").stdout) == []
    assert w.stop() == 0, w.log()


def test_upstream_style_registration_without_build_id(engine):
    status, out, _ = http("POST", engine.api + "/workers/register", {"identity": "old", "queue": "zz"})
    assert status == 200 and out["worker_id"]
    status, out, _ = http(
        "POST", engine.api + "/workers/register", {"identity": "x", "queue": "zz", "build_id": 7}
    )
    assert status == 400 and "build_id" in out["error"]


def test_replay_gate_for_python_worker_files(engine, logdir, tmp_path):
    """The same gate for Python worker files, on histories the Lua v1 worker produced (same protocol)."""
    pytest.importorskip("assay.workflow")
    py1, py2, pyunsafe = HERE / "order_v1.py", HERE / "order_v2.py", HERE / "order_v2_unsafe.py"
    w = worker(engine, logdir, V1)
    start(engine, "Order", "p-1", {"sku": "p1"}, queue=Q)
    parked(engine, "p-1")
    assert w.stop() == 0, w.log()
    hist = tmp_path / "p-1.json"
    hist.write_text(cli(engine, "workflow", "export", "p-1").stdout)
    for good in (py1, py2):
        r = cli(engine, "replay", str(good), "--history", str(hist), "-o", "json")
        assert r.returncode == 0, r.stdout + r.stderr
    r = cli(engine, "replay", str(pyunsafe), "--workflow-id", "p-1", "-o", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    div = json.loads(r.stdout)["results"][0]["divergence"]
    awaiting = next(e["seq"] for e in events(engine, "p-1") if e["event_type"] == "WorkflowAwaitingSignal")
    assert div["event_seq"] == awaiting and "fraud_check" in div["code"], div


def test_python_worker_stuck_then_fixed(engine, logdir):
    """A Python worker with unsafe code fails the task (the run is flagged stuck, nothing else runs); the
    versioned code continues it on its old path."""
    pytest.importorskip("assay.workflow")
    q = "py-orders"

    def pyworker(name: str) -> Worker:
        w = Worker(HERE / name, engine.url, logdir, queue=q)
        w.wait_ready()
        return w

    w = pyworker("order_v1.py")
    start(engine, "Order", "py-7", {"sku": "p7"}, queue=q)
    parked(engine, "py-7")
    assert w.stop() == 0, w.log()
    w = pyworker("order_v2_unsafe.py")
    signal(engine, "py-7", "go")
    wait_until(lambda: describe(engine, "py-7")["stuck"], 60, what="py-7 to be flagged stuck")
    assert "fraud_check" in describe(engine, "py-7")["stuck"]["reason"]
    assert names(engine, "py-7") == ["reserve"]
    assert w.stop() == 0, w.log()
    w = pyworker("order_v2.py")
    done = wait_status(engine, "py-7", timeout=90, worker=w)
    assert w.stop() == 0, w.log()
    assert done["status"] == "COMPLETED" and done["result"]["path"] == "v1" and done["stuck"] is None
    assert names(engine, "py-7") == ["reserve", "charge"]
