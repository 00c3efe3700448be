"""Every example in examples/workflows runs end to end against a live engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, subprocess_env
from tests.lua.conftest import assay_run
from tests.lua.e2e import Worker, describe, event_types, events

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "examples" / "workflows"


def test_examples_have_readmes_with_commands():
    dirs = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert {"hello-workflow", "approval-pipeline", "nightly-report"} <= set(dirs)
    for d in dirs:
        readme = (EXAMPLES / d / "README.md").read_text()
        assert "assay serve" in readme and "assay run worker.lua" in readme, d


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assay", *args, "--output", "json"],
        cwd=ROOT,
        timeout=30,
        env=subprocess_env({"ASSAY_ENGINE_URL": engine.url}),
        capture_output=True,
        text=True,
    )


def example(engine, logdir, name: str, queue: str) -> Worker:
    w = Worker(EXAMPLES / name / "worker.lua", engine.url, logdir, queue=queue)
    w.wait_ready()
    return w


def test_hello_workflow(engine, logdir):
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": "ex-hello"}
    w = example(engine, logdir, "hello-workflow", "ex-hello")
    try:
        # the README's commands
        r = cli(
            engine,
            "workflow",
            "start",
            "--type",
            "HelloWorkflow",
            "--id",
            "hello-1",
            "--queue",
            "ex-hello",
            "--input",
            '{"name": "Ada"}',
        )
        assert r.returncode == 0, r.stderr
        r = cli(engine, "workflow", "wait", "hello-1", "--timeout", "20")
        assert r.returncode == 0, r.stderr + w.log()
        assert describe(engine, "hello-1")["result"] == {"greeting": "Hello, Ada!", "workflow_id": "hello-1"}
        assert event_types(engine, "hello-1") == [
            "WorkflowStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted",
        ]
        # and the Lua driver
        r = assay_run(str(EXAMPLES / "hello-workflow" / "start.lua"), "Grace", env=env)
        assert (r.returncode, r.stdout.strip()) == (0, "Hello, Grace!"), r.stderr
    finally:
        assert w.stop() == 0, w.log()


@pytest.mark.parametrize(
    "action, expected",
    [
        ("approve", "COMPLETED Build=done Approval=done Deploy=done Verify=done"),
        ("reject", "CANCELLED Build=done Approval=cancelled Deploy=skipped Verify=skipped"),
    ],
)
def test_approval_pipeline(engine, logdir, action, expected):
    queue = f"ex-approval-{action}"
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": queue}
    d = EXAMPLES / "approval-pipeline"
    w = example(engine, logdir, "approval-pipeline", queue)
    try:
        ref = f"ref-{action}"
        r = assay_run(str(d / "start.lua"), ref, env=env)
        assert r.returncode == 0 and r.stdout.strip() == f"deploy-{ref}", r.stderr
        r = assay_run(str(d / "decide.lua"), f"deploy-{ref}", action, "alice", env=env)
        assert r.returncode == 0, r.stderr + w.log()
        assert r.stdout.strip() == expected
    finally:
        assert w.stop() == 0, w.log()
    wf = describe(engine, f"deploy-{ref}")
    state = cli(engine, "workflow", "state", f"deploy-{ref}", "pipeline_state")
    steps = json.loads(state.stdout)["value"]
    assert steps["log"][0]["step"] == 1 and all("time" in e for e in steps["log"])
    if action == "approve":
        assert wf["result"]["approved_by"] == "alice" and wf["search_attributes"]["approver"] == "alice"
        assert steps["status"] == "done" and wf["search_attributes"]["stage"] == "Verify"
    else:
        assert steps["status"] == "cancelled" and steps["log"][-1]["msg"] == "rejected by alice"


def test_approval_pipeline_times_out(engine, logdir):
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": "ex-approval-t", "APPROVAL_TIMEOUT_SECS": "0.5"}
    w = example(engine, logdir, "approval-pipeline", "ex-approval-t")
    try:
        r = assay_run(str(EXAMPLES / "approval-pipeline" / "start.lua"), "slowpoke", env=env)
        assert r.returncode == 0, r.stderr
        from tests.lua.e2e import wait_status

        wf = wait_status(engine, "deploy-slowpoke", worker=w)
    finally:
        assert w.stop() == 0, w.log()
    assert wf["status"] == "FAILED" and "approval timed out after 0.5s" in wf["error"]


def test_nightly_report(engine, logdir):
    env = {"ASSAY_ENGINE_URL": engine.url, "ASSAY_QUEUE": "ex-nightly"}
    w = example(engine, logdir, "nightly-report", "ex-nightly")
    try:
        r = assay_run(str(EXAMPLES / "nightly-report" / "schedule.lua"), env=env)
        assert r.returncode == 0, r.stderr + w.log()
    finally:
        assert w.stop() == 0, w.log()
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "schedule nightly-report: 0 0 2 * * * (UTC)"
    run_id = lines[1].removeprefix("triggered ")
    assert lines[2].startswith(f"{run_id}: 3 anomalies handled by 3 children, report rep-")
    wf = describe(engine, run_id)
    evs = events(engine, run_id)
    types = [e["event_type"] for e in evs]
    assert types[:2] == ["WorkflowStarted", "SideEffectRecorded"]
    assert types.count("ChildWorkflowCompleted") == 3 and types[-1] == "WorkflowCompleted"
    report_id = evs[1]["payload"]["value"]
    assert wf["result"]["report_id"] == report_id and wf["search_attributes"]["report_id"] == report_id
    kids = json.loads(cli(engine, "workflow", "children", run_id).stdout)
    assert sorted(k["id"] for k in kids) == [f"{report_id}-anomaly-{i}" for i in (1, 2, 3)]
