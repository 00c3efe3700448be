"""Every operator subcommand, in-process (CliRunner) against the real engine app: request sent, output shown."""

from __future__ import annotations

import json

import pytest
import yaml


def api(real, path):
    from tests.helpers import http

    status, body, _ = http("GET", real.url + "/api/v1" + path)
    assert status == 200, body
    return body


def out_json(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- workflow --------------------------------------------------------------------------------------------
def test_workflow_start_sends_the_body_and_prints_the_answer(run, real):
    res = run(
        "workflow",
        "start",
        "--type",
        "Hello",
        "--id",
        "w1",
        "--input",
        '{"name": "ada"}',
        "--search-attrs",
        '{"env": "prod"}',
        "--queue",
        "q1",
    )
    assert out_json(res) == {
        "workflow_id": "w1",
        "run_id": real.engine.get_workflow("w1")["run_id"],
        "status": "PENDING",
    }
    assert real.last("POST", "/api/v1/workflows")["body"] == {
        "workflow_type": "Hello",
        "workflow_id": "w1",
        "namespace": "main",
        "task_queue": "q1",
        "input": {"name": "ada"},
        "search_attributes": {"env": "prod"},
    }


def test_workflow_start_defaults(run, real):
    res = run("workflow", "start", "-t", "Nightly")
    wid = out_json(res)["workflow_id"]
    assert wid.startswith("wf-nightly-")
    body = real.last("POST", "/api/v1/workflows")["body"]
    assert body["task_queue"] == "default" and "input" not in body


def test_workflow_start_input_from_file_and_stdin(run, real, tmp_path):
    f = tmp_path / "in.json"
    f.write_text('{"from": "file"}')
    assert run("workflow", "start", "-t", "T", "--id", "a", "--input", f"@{f}").exit_code == 0
    assert real.engine.get_workflow("a")["input"] == {"from": "file"}
    assert run("workflow", "start", "-t", "T", "--id", "b", "--input", "-", input='[1, "x"]').exit_code == 0
    assert real.engine.get_workflow("b")["input"] == [1, "x"]
    assert run("workflow", "start", "-t", "T", "--id", "c", "--input", "42").exit_code == 0
    assert real.engine.get_workflow("c")["input"] == 42


def test_workflow_start_table_output(run, real):
    res = run("workflow", "start", "-t", "T", "--id", "w9", "-o", "table")
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0].split() == ["workflow_id", "w9"]


def test_workflow_list_filters_and_table(run, real):
    real.start("w1", "Report", status="RUNNING", search_attributes={"env": "prod"})
    real.start("w2", "Report", status="FAILED")
    real.start("w3", "Other", status="RUNNING", namespace="billing")
    res = run(
        "workflow",
        "list",
        "--status",
        "running",
        "--type",
        "Report",
        "--limit",
        "5",
        "--offset",
        "0",
        "--search-attrs",
        '{"env": "prod"}',
    )
    assert [w["id"] for w in out_json(res)] == ["w1"]
    q = real.last("GET", "/api/v1/workflows")["query"]
    assert q == {
        "namespace": "main",
        "status": "RUNNING",
        "type": "Report",
        "limit": "5",
        "search_attrs": '{"env":"prod"}',
    }
    res = run("workflow", "list", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "QUEUE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["w2", "w1"]
    assert lines[1].split()[1:] == [
        "Report",
        "FAILED",
        "q-w2",
        "2023-11-14T22:13:22Z",
    ]  # the FakeClock's time
    res = run("-n", "billing", "workflow", "list", "-o", "jsonl")
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["w3"]
    res = run("workflow", "list", "-o", "yaml")
    assert [w["id"] for w in yaml.safe_load(res.stdout)] == ["w2", "w1"]
    assert yaml.safe_load(res.stdout) == out_json(run("workflow", "list"))


def test_workflow_list_rejects_bad_filters(run):
    assert run("workflow", "list", "--status", "DONE").exit_code == 64
    assert run("workflow", "list", "--search-attrs", "[1]").exit_code == 64
    assert run("workflow", "list", "--limit", "0").exit_code == 64


def test_workflow_describe_state_children(run, real):
    real.start("p1", "Parent", input={"n": 1})
    real.command("p1", {"type": "StartChildWorkflow", "workflow_type": "Child", "workflow_id": "c1"})
    assert out_json(run("workflow", "describe", "p1"))["input"] == {"n": 1}
    res = run("workflow", "describe", "p1", "-o", "table")
    assert "input" in res.stdout and '{"n":1}' in res.stdout
    described = yaml.safe_load(run("workflow", "describe", "p1", "-o", "yaml").stdout)
    assert described == out_json(run("workflow", "describe", "p1")) and described["id"] == "p1"
    res = run("workflow", "children", "p1", "-o", "table")
    assert res.stdout.splitlines()[0].split() == ["ID", "TYPE", "STATUS", "CREATED"]
    assert res.stdout.splitlines()[1].split()[:2] == ["c1", "Child"]
    assert run("workflow", "state", "p1").exit_code == 1
    real.start("s1")
    real.command("s1", {"type": "RecordSnapshot", "state": {"progress": 40}})
    state = out_json(run("workflow", "state", "s1"))
    assert state == real.engine.get_state("s1") and state["state"] == {"progress": 40}
    assert out_json(run("workflow", "state", "s1", "progress"))["value"] == 40
    res = run("workflow", "state", "s1", "missing")
    assert res.exit_code == 1 and "not found: query 'missing'" in res.stderr


def test_workflow_events(run, real):
    real.start("w1", input={"a": 1})
    real.command("w1", {"type": "ScheduleActivity", "seq": 1, "name": "fetch"})
    events = out_json(run("workflow", "events", "w1"))
    assert [e["event_type"] for e in events] == ["WorkflowStarted", "ActivityScheduled"]
    assert events == real.engine.list_events("w1")
    res = run("workflow", "events", "w1", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"]
    assert lines[2].split()[:2] == ["2", "ActivityScheduled"]
    res = run("workflow", "events", "nope")
    assert res.exit_code == 1 and "not found" in res.stderr


def test_workflow_signal_payload_forms(run, real, tmp_path):
    real.start("w1")
    res = run("workflow", "signal", "w1", "approve", '{"by": "ada"}')
    assert out_json(res) == {
        "ok": True,
        "message": "signal 'approve' sent to w1",
        "workflow_id": "w1",
        "signal": "approve",
    }
    assert real.last("POST", "/api/v1/workflows/w1/signal/approve")["body"] == {"payload": {"by": "ada"}}
    p = tmp_path / "p.json"
    p.write_text('"from-file"')
    assert run("workflow", "signal", "w1", "s2", f"@{p}").exit_code == 0
    assert real.last("POST")["body"] == {"payload": "from-file"}
    assert run("workflow", "signal", "w1", "s3", "-", input='{"x": [1]}').exit_code == 0
    assert real.last("POST")["body"] == {"payload": {"x": [1]}}
    res = run("workflow", "signal", "w1", "s4", "-o", "yaml")
    assert yaml.safe_load(res.stdout) == {
        "ok": True,
        "message": "signal 's4' sent to w1",
        "workflow_id": "w1",
        "signal": "s4",
    }
    res = run("workflow", "signal", "w1", "nudge", "-o", "table")
    assert res.stdout == "signal 'nudge' sent to w1\n"
    assert real.last("POST")["body"] == {"payload": None}
    received = [e["payload"] for e in real.engine.list_events("w1") if e["event_type"] == "SignalReceived"]
    assert [(s["signal"], s["payload"]) for s in received] == [
        ("approve", {"by": "ada"}),
        ("s2", "from-file"),
        ("s3", {"x": [1]}),
        ("s4", None),
        ("nudge", None),
    ]


def test_workflow_cancel_and_terminate(run, real):
    real.start("w1")
    real.start("w2", status="RUNNING")
    res = run("workflow", "cancel", "w1", "--reason", "not needed", "-o", "table")
    assert res.stdout == "cancel requested for w1\n"
    assert real.last("POST", "/api/v1/workflows/w1/cancel")["body"] == {"reason": "not needed"}
    assert real.engine.get_workflow("w1")["status"] == "CANCELLED"  # never ran: cancelled at once
    res = run("workflow", "terminate", "w2", "--reason", "bad deploy")
    assert out_json(res) == {"ok": True, "message": "w2 terminated", "workflow_id": "w2"}
    w2 = real.engine.get_workflow("w2")
    assert w2["status"] == "FAILED" and w2["error"] == "bad deploy"
    res = run("workflow", "terminate", "w2")
    assert res.exit_code == 1 and "Error: " in res.stderr and "(HTTP 4" in res.stderr


def test_workflow_continue_as_new(run, real):
    real.start("w1", "Loop", status="RUNNING")
    res = run("workflow", "continue-as-new", "w1", "--input", '{"cursor": 5}', "--new-id", "w1-b")
    assert out_json(res)["workflow_id"] == "w1-b"
    assert real.last("POST", "/api/v1/workflows/w1/continue-as-new")["body"] == {
        "input": {"cursor": 5},
        "workflow_id": "w1-b",
    }
    new = real.engine.get_workflow("w1-b")
    assert new["input"] == {"cursor": 5} and new["workflow_type"] == "Loop"
    assert real.engine.get_workflow("w1")["status"] == "COMPLETED"


# -- schedule --------------------------------------------------------------------------------------------
def test_schedule_lifecycle(run, real):
    res = run(
        "schedule",
        "create",
        "nightly",
        "--type",
        "Report",
        "--cron",
        "0 0 2 * * *",
        "--timezone",
        "Europe/Paris",
        "--input",
        '{"full": false}',
        "--queue",
        "reports",
        "--overlap",
        "QUEUE",
    )
    rec = out_json(res)
    assert rec["name"] == "nightly" and rec["overlap_policy"] == "queue"
    assert real.last("POST", "/api/v1/schedules")["body"] == {
        "name": "nightly",
        "namespace": "main",
        "workflow_type": "Report",
        "cron_expr": "0 0 2 * * *",
        "task_queue": "reports",
        "input": {"full": False},
        "timezone": "Europe/Paris",
        "overlap_policy": "queue",
    }
    res = run("schedule", "list", "-o", "table")
    header, row = res.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "TYPE", "CRON", "TZ"]
    next_run = out_json(run("schedule", "describe", "nightly"))["next_runs"][0]
    assert row.startswith("nightly") and "0 0 2 * * *" in row and next_run in row
    assert out_json(run("schedule", "describe", "nightly"))["cron_expr"] == "0 0 2 * * *"
    res = run("schedule", "patch", "nightly", "--cron", "0 30 2 * * *", "--input", "null")
    assert out_json(res)["cron_expr"] == "0 30 2 * * *"
    assert real.last("PATCH")["body"] == {"cron_expr": "0 30 2 * * *", "input": None}
    assert run("schedule", "pause", "nightly", "-o", "table").stdout == "nightly paused\n"
    assert real.engine.get_schedule("main", "nightly")["paused"] is True
    assert out_json(run("schedule", "resume", "nightly"))["paused"] is False
    trig = out_json(run("schedule", "trigger", "nightly"))
    assert (
        trig["status"] == "PENDING"
        and real.engine.get_workflow(trig["workflow_id"])["workflow_type"] == "Report"
    )
    assert real.last("POST", "/api/v1/schedules/nightly/trigger")["query"] == {"namespace": "main"}
    assert run("schedule", "delete", "nightly", "-o", "table").stdout == "nightly deleted\n"
    assert real.engine.list_schedules("main") == []
    res = run("schedule", "describe", "nightly")
    assert (
        res.exit_code == 1
        and res.stderr.startswith("Error: not found: schedule")
        and "(HTTP 404)" in res.stderr
    )


def test_schedule_create_needs_type_and_cron_and_reports_engine_errors(run):
    assert run("schedule", "create", "x", "--cron", "* * * * * *").exit_code == 64
    assert run("schedule", "create", "x", "--type", "T").exit_code == 64
    assert (
        run("schedule", "create", "x", "--type", "T", "--cron", "* * * * * *", "--overlap", "nope").exit_code
        == 64
    )
    res = run("schedule", "create", "x", "--type", "T", "--cron", "* * * * * *", "--timezone", "Mars/Base")
    assert res.exit_code == 1 and "Mars/Base" in res.stderr and "(HTTP 400)" in res.stderr


def test_schedule_patch_nothing_is_usage_error(run, real):
    res = run("schedule", "patch", "nightly")
    assert res.exit_code == 64 and "nothing to change" in res.stderr
    assert not any(r["method"] == "PATCH" for r in real.requests)


def test_schedule_namespace_is_sent(run, real):
    run("schedule", "create", "s", "--type", "T", "--cron", "* * * * * *", "-n", "billing")
    assert real.last("POST", "/api/v1/schedules")["body"]["namespace"] == "billing"
    assert [s["name"] for s in out_json(run("schedule", "list", "--namespace", "billing"))] == ["s"]
    assert out_json(run("schedule", "list")) == []


# -- namespace, worker, queue ------------------------------------------------------------------------
def test_namespace_commands(run, real):
    assert run("namespace", "create", "billing", "-o", "table").stdout == "namespace 'billing' created\n"
    assert out_json(run("namespace", "create", "ops")) == {
        "ok": True,
        "message": "namespace 'ops' created",
        "name": "ops",
    }
    res = run("namespace", "list", "-o", "table")
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["NAME", "billing", "main", "ops"]
    stats = out_json(run("namespace", "describe", "billing"))
    assert stats["namespace"] == "billing" and stats["total_workflows"] == 0
    assert run("namespace", "delete", "billing", "-o", "table").stdout == "namespace 'billing' deleted\n"
    res = run("namespace", "delete", "main")
    assert res.exit_code == 1 and "cannot delete the 'main' namespace" in res.stderr
    assert run("namespace", "create", "ops").exit_code == 1  # duplicate -> 409


def test_worker_list_and_queue_stats(run, real):
    wid = real.engine.register_worker(
        identity="host-1", queue="q", workflows=["A"], worker_id="w-0123456789abcdef"
    )
    real.start("wq", queue="q")
    real.command("wq", {"type": "ScheduleActivity", "seq": 1, "name": "fetch", "task_queue": "q"})
    res = run("worker", "list", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "IDENTITY", "QUEUE", "ACTIVE", "LAST", "HEARTBEAT"]
    mine = next(line.split() for line in lines[1:] if line.startswith(wid))
    assert mine == [wid, "host-1", "q", "0", "2023-11-14T22:13:20Z"]
    assert out_json(run("worker", "list")) == api(real, "/workers?namespace=main")  # the API's objects
    res = run("queue", "stats", "-o", "table")
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0] == ["QUEUE", "PENDING", "RUNNING", "WORKERS"]
    assert ["q", "1", "0", "2"] in rows  # one pending activity; our worker and the test's
    assert out_json(run("queue", "stats")) == api(real, "/queues?namespace=main")
    assert out_json(run("queue", "stats", "-n", "other")) == []
    assert real.last("GET", "/api/v1/queues")["query"] == {"namespace": "other"}


# -- wait and follow (in-process) -----------------------------------------------------------------------
@pytest.mark.parametrize("status,code", [("COMPLETED", 0), ("FAILED", 1), ("CANCELLED", 1)])
def test_wait_exit_codes(run, real, status, code):
    real.start("w1")
    real.finish("w1", status, error="kaput" if status == "FAILED" else None)
    res = run("workflow", "wait", "w1", "--timeout", "5")
    assert res.exit_code == code
    assert json.loads(res.stdout)["status"] == status
    if code:
        assert res.stderr.startswith(f"Error: workflow w1 ended {status}")
        assert ("kaput" in res.stderr) == (status == "FAILED")
    res = run("workflow", "wait", "w1", "-o", "table")
    assert res.stdout == f"w1  {status}\n"
    res = run("workflow", "wait", "w1", "-o", "yaml")
    assert yaml.safe_load(res.stdout)["status"] == status


def test_wait_timeout_and_target(run, real):
    real.start("w1", status="RUNNING")
    res = run("workflow", "wait", "w1", "--timeout", "0.2")
    assert res.exit_code == 2
    assert res.stderr == "Error: timeout after 0.2s waiting for w1 (last status: RUNNING)\n"
    assert res.stdout == ""
    assert run("workflow", "wait", "w1", "--target", "running", "--timeout", "5").exit_code == 0
    assert run("workflow", "wait", "nope", "--timeout", "1").exit_code == 1
    assert run("workflow", "wait", "w1", "--target", "DONE").exit_code == 64


def test_events_follow_prints_until_terminal(run, real):
    real.start("w1")
    real.command("w1", {"type": "ScheduleActivity", "seq": 1, "name": "fetch"})
    real.finish("w1", "COMPLETED", result=7)  # its worker runs the activity, then completes
    history = [e["event_type"] for e in real.engine.list_events("w1")]
    assert history[:2] == ["WorkflowStarted", "ActivityScheduled"] and history[-1] == "WorkflowCompleted"
    res = run("workflow", "events", "w1", "--follow")
    assert res.exit_code == 0
    assert [json.loads(line)["event_type"] for line in res.stdout.splitlines()] == history
    res = run("workflow", "events", "w1", "-f", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"]
    assert lines[-1].split()[:2] == [str(len(history)), "WorkflowCompleted"] and lines[-1].endswith("7")
    res = run("workflow", "events", "w1", "-f", "-o", "yaml")
    assert res.stdout.startswith("---\n")
    assert [d["event_type"] for d in yaml.safe_load_all(res.stdout)] == history
    assert run("workflow", "events", "nope", "--follow").exit_code == 1


def test_events_follow_streams_new_events_as_they_happen(real, tmp_path):
    """`--follow` against a live workflow: the CLI process prints events while the worker acts."""
    import subprocess
    import sys

    from tests.helpers import ROOT, stop_process, subprocess_env, wait_until

    real.start("live", status="RUNNING")
    out = tmp_path / "follow.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assay",
                "--engine-url",
                real.url,
                "workflow",
                "events",
                "live",
                "-f",
                "-o",
                "jsonl",
            ],
            stdout=f,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=subprocess_env(),
        )
    try:
        wait_until(lambda: "WorkflowStarted" in out.read_text(), 30, what="the history so far")
        wait_until(lambda: real.subscribers >= 1, 10, what="the follower's event stream")
        real.engine.signal("live", "go", {"n": 1})
        wait_until(lambda: "SignalReceived" in out.read_text(), 10, what="the signal event")
        real.finish("live", result="done")
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            stop_process(proc)
    kinds = [json.loads(line)["event_type"] for line in out.read_text().splitlines()]
    assert kinds == [e["event_type"] for e in real.engine.list_events("live")]
    assert kinds[0] == "WorkflowStarted" and "SignalReceived" in kinds and kinds[-1] == "WorkflowCompleted"
