"""The Python versions of examples/workflows run end to end against a live engine (driven by the same
Lua scripts as the Lua workers) and under assay.testing with time skipping."""

from __future__ import annotations

import importlib.util
import json
import types

import pytest

from assay.testing import Engine, WorkflowFailed
from tests.helpers import ROOT
from tests.lua.conftest import assay_run
from tests.lua.e2e import describe, events, wait_status
from tests.python.e2e import PyWorker

EXAMPLES = ROOT / "examples" / "workflows"


def load(name: str) -> types.ModuleType:
    """Import an example's worker.py as a module (its handlers register; listen() does not run)."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name.replace('-', '_')}", EXAMPLES / name / "worker.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def worker(engine, logdir, name: str, queue: str, direct: bool = False) -> PyWorker:
    w = PyWorker(EXAMPLES / name / "worker.py", engine.url, logdir, queue=queue, direct=direct)
    w.wait_ready()
    return w


# --- live engine ----------------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("direct", [False, True], ids=["assay-run", "python"])
def test_hello_workflow_live(engine, logdir, direct):
    queue = f"pyex-hello-{direct}"
    w = worker(engine, logdir, "hello-workflow", queue, direct)
    try:
        r = assay_run(str(EXAMPLES / "hello-workflow" / "start.lua"), "Grace",
                      env={"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": queue})  # fmt: skip
    finally:
        assert w.stop() == 0, w.log()
    assert (r.returncode, r.stdout.strip()) == (0, "Hello, Grace!"), r.stderr + w.log()
    assert "composing a greeting for Grace (attempt 1)" in w.log()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "action, expected",
    [
        ("approve", "COMPLETED Build=done Approval=done Deploy=done Verify=done"),
        ("reject", "CANCELLED Build=done Approval=cancelled Deploy=skipped Verify=skipped"),
    ],
)
def test_approval_pipeline_live(engine, logdir, action, expected):
    queue = f"pyex-approval-{action}"
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": queue}
    d = EXAMPLES / "approval-pipeline"
    w = worker(engine, logdir, "approval-pipeline", queue)
    ref = f"py-{action}"
    try:
        r = assay_run(str(d / "start.lua"), ref, env=env)
        assert r.returncode == 0 and r.stdout.strip() == f"deploy-{ref}", r.stderr
        r = assay_run(str(d / "decide.lua"), f"deploy-{ref}", action, "alice", env=env)
        assert r.returncode == 0, r.stderr + w.log()
        assert r.stdout.strip() == expected
    finally:
        assert w.stop() == 0, w.log()
    wf = describe(engine, f"deploy-{ref}")
    if action == "approve":
        assert wf["result"]["approved_by"] == "alice" and wf["search_attributes"]["approver"] == "alice"
        assert wf["search_attributes"]["stage"] == "Verify"


@pytest.mark.e2e
def test_nightly_report_live(engine, logdir):
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": "pyex-nightly"}
    w = worker(engine, logdir, "nightly-report", "pyex-nightly")
    try:
        r = assay_run(str(EXAMPLES / "nightly-report" / "schedule.lua"), env=env)
        assert r.returncode == 0, r.stderr + w.log()
    finally:
        assert w.stop() == 0, w.log()
    lines = r.stdout.strip().splitlines()
    run_id = lines[1].removeprefix("triggered ")
    assert lines[2].startswith(f"{run_id}: 3 anomalies handled by 3 children, report rep-")
    evs = events(engine, run_id)
    assert [e["event_type"] for e in evs][:2] == ["WorkflowStarted", "SideEffectRecorded"]
    report_id = evs[1]["payload"]["value"]
    wf = wait_status(engine, run_id)
    assert wf["result"]["report_id"] == report_id and wf["search_attributes"]["region"] == "eu-west-1"


# --- assay.testing ---------------------------------------------------------------------------------------
def test_hello_workflow_under_the_kit():
    with Engine(load("hello-workflow")) as env:
        wid = env.start("HelloWorkflow", {"name": "Ada"}, workflow_id="hello-kit")
        assert env.result(wid) == {"greeting": "Hello, Ada!", "workflow_id": "hello-kit"}


@pytest.mark.parametrize("action", ["approve", "reject", "timeout"])
def test_approval_pipeline_under_the_kit(action):
    with Engine(load("approval-pipeline")) as env:
        wid = env.start("ApprovalPipeline", {"ref": "abc123", "env": "prod"})
        assert env.state(wid, "pipeline_state")["steps"][1]["actions"] == ["approve", "reject"]
        if action == "timeout":
            t0 = env.now()
            with pytest.raises(WorkflowFailed, match="approval timed out after 3600s"):
                env.result(wid)  # an hour of waiting, skipped
            assert env.now() - t0 == pytest.approx(3600)
            return
        env.signal(wid, "step_action", {"step": "Build", "action": "approve"})  # ignored: wrong step
        env.advance(600)
        env.signal(wid, "step_action", {"step": "Approval", "action": action, "user": "alice"})
        state = env.state(wid, "pipeline_state")
        if action == "reject":
            with pytest.raises(WorkflowFailed, match="CANCELLED"):
                env.result(wid)
            assert [s["status"] for s in state["steps"]] == ["done", "cancelled", "skipped", "skipped"]
            return
        assert env.result(wid) == {
            "image": "registry.example/app:abc123",
            "version": "abc123",
            "approved_by": "alice",
        }
        state = env.state(wid, "pipeline_state")
        assert state["status"] == "done"
        assert any(
            e["msg"] == "ignored a step_action that was not for the Approval step" for e in state["log"]
        )
        assert env.describe(wid)["search_attributes"]["approver"] == "alice"


def test_nightly_report_under_the_kit_fires_from_its_schedule():
    with Engine(load("nightly-report")) as env:  # the fake clock starts at 2025-01-01T00:00Z
        env.create_schedule(name="nightly-report", workflow_type="NightlyReport", cron_expr="0 0 2 * * *",
                            input={"region": "us-east-1"})  # fmt: skip
        env.advance(3600)
        assert [w for w in env.engine.list_workflows() if w["workflow_type"] == "NightlyReport"] == []
        env.advance(3600)  # 02:00: the schedule fires
        runs = [w for w in env.engine.list_workflows() if w["workflow_type"] == "NightlyReport"]
        assert len(runs) == 1
        out = env.result(runs[0]["id"])
        assert out["anomalies_handled"] == 3 and out["region"] == "us-east-1"
        assert out["published"] == "https://reports.example/" + out["report_id"]
        kids = env.engine.list_children(runs[0]["id"])
        assert sorted(k["id"] for k in kids) == [f"{out['report_id']}-anomaly-{i}" for i in (1, 2, 3)]
        assert json.dumps(env.describe(kids[0]["id"])["result"]).count("fixed") == 1
