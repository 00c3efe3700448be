"""Every operator subcommand, in-process (CliRunner) against the fake engine: request sent, output shown."""

from __future__ import annotations

import json

import pytest


def out_json(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- workflow --------------------------------------------------------------------------------------------
def test_workflow_start_sends_the_body_and_prints_the_answer(run, fake):
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
        "run_id": fake.workflows["w1"]["run_id"],
        "status": "PENDING",
    }
    assert fake.last("POST", "/api/v1/workflows")["body"] == {
        "workflow_type": "Hello",
        "workflow_id": "w1",
        "namespace": "main",
        "task_queue": "q1",
        "input": {"name": "ada"},
        "search_attributes": {"env": "prod"},
    }


def test_workflow_start_defaults(run, fake):
    res = run("workflow", "start", "-t", "Nightly")
    wid = out_json(res)["workflow_id"]
    assert wid.startswith("wf-nightly-")
    body = fake.last("POST", "/api/v1/workflows")["body"]
    assert body["task_queue"] == "default" and "input" not in body


def test_workflow_start_input_from_file_and_stdin(run, fake, tmp_path):
    f = tmp_path / "in.json"
    f.write_text('{"from": "file"}')
    assert run("workflow", "start", "-t", "T", "--id", "a", "--input", f"@{f}").exit_code == 0
    assert fake.workflows["a"]["input"] == {"from": "file"}
    assert run("workflow", "start", "-t", "T", "--id", "b", "--input", "-", input='[1, "x"]').exit_code == 0
    assert fake.workflows["b"]["input"] == [1, "x"]
    assert run("workflow", "start", "-t", "T", "--id", "c", "--input", "42").exit_code == 0
    assert fake.workflows["c"]["input"] == 42


def test_workflow_start_table_output(run, fake):
    res = run("workflow", "start", "-t", "T", "--id", "w9", "-o", "table")
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0].split() == ["workflow_id", "w9"]


def test_workflow_list_filters_and_table(run, fake):
    fake.add_workflow("w1", "Report", status="RUNNING", search_attributes={"env": "prod"})
    fake.add_workflow("w2", "Report", status="FAILED")
    fake.add_workflow("w3", "Other", status="RUNNING", namespace="billing")
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
    q = fake.last("GET", "/api/v1/workflows")["query"]
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
    res = run("-n", "billing", "workflow", "list", "-o", "jsonl")
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["w3"]


def test_workflow_list_rejects_bad_filters(run):
    assert run("workflow", "list", "--status", "DONE").exit_code == 64
    assert run("workflow", "list", "--search-attrs", "[1]").exit_code == 64
    assert run("workflow", "list", "--limit", "0").exit_code == 64


def test_workflow_describe_state_children(run, fake):
    fake.add_workflow("p1", "Parent", input={"n": 1})
    fake.add_workflow("c1", "Child", parent_id="p1")
    assert out_json(run("workflow", "describe", "p1"))["input"] == {"n": 1}
    res = run("workflow", "describe", "p1", "-o", "table")
    assert "input" in res.stdout and '{"n":1}' in res.stdout
    res = run("workflow", "children", "p1", "-o", "table")
    assert res.stdout.splitlines()[0].split() == ["ID", "TYPE", "STATUS", "CREATED"]
    assert res.stdout.splitlines()[1].split()[:2] == ["c1", "Child"]
    assert run("workflow", "state", "p1").exit_code == 1
    fake.states["p1"] = {"state": {"progress": 40}, "event_seq": 3, "created_at": 1.0}
    assert out_json(run("workflow", "state", "p1")) == fake.states["p1"]
    assert out_json(run("workflow", "state", "p1", "progress"))["value"] == 40
    res = run("workflow", "state", "p1", "missing")
    assert res.exit_code == 1 and "not found: query 'missing'" in res.stderr


def test_workflow_events(run, fake):
    fake.add_workflow("w1", input={"a": 1})
    fake.append_event("w1", "ActivityScheduled", {"name": "fetch", "activity_seq": 1})
    events = out_json(run("workflow", "events", "w1"))
    assert [e["event_type"] for e in events] == ["WorkflowStarted", "ActivityScheduled"]
    res = run("workflow", "events", "w1", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"]
    assert lines[2].split()[:2] == ["2", "ActivityScheduled"]
    res = run("workflow", "events", "nope")
    assert res.exit_code == 1 and "not found" in res.stderr


def test_workflow_signal_payload_forms(run, fake, tmp_path):
    fake.add_workflow("w1")
    res = run("workflow", "signal", "w1", "approve", '{"by": "ada"}')
    assert out_json(res) == {
        "ok": True,
        "message": "signal 'approve' sent to w1",
        "workflow_id": "w1",
        "signal": "approve",
    }
    assert fake.last("POST", "/api/v1/workflows/w1/signal/approve")["body"] == {"payload": {"by": "ada"}}
    p = tmp_path / "p.json"
    p.write_text('"from-file"')
    assert run("workflow", "signal", "w1", "s2", f"@{p}").exit_code == 0
    assert fake.last("POST")["body"] == {"payload": "from-file"}
    assert run("workflow", "signal", "w1", "s3", "-", input='{"x": [1]}').exit_code == 0
    assert fake.last("POST")["body"] == {"payload": {"x": [1]}}
    res = run("workflow", "signal", "w1", "nudge", "-o", "table")
    assert res.stdout == "signal 'nudge' sent to w1\n"
    assert fake.last("POST")["body"] == {"payload": None}


def test_workflow_cancel_and_terminate(run, fake):
    fake.add_workflow("w1")
    fake.add_workflow("w2", status="RUNNING")
    res = run("workflow", "cancel", "w1", "--reason", "not needed", "-o", "table")
    assert res.stdout == "cancel requested for w1\n"
    assert fake.last("POST", "/api/v1/workflows/w1/cancel")["body"] == {"reason": "not needed"}
    assert fake.workflows["w1"]["status"] == "CANCELLED"
    res = run("workflow", "terminate", "w2", "--reason", "bad deploy")
    assert out_json(res) == {"ok": True, "message": "w2 terminated", "workflow_id": "w2"}
    assert fake.workflows["w2"]["status"] == "FAILED" and fake.workflows["w2"]["error"] == "bad deploy"
    res = run("workflow", "terminate", "w2")
    assert res.exit_code == 1 and "already terminal" in res.stderr


def test_workflow_continue_as_new(run, fake):
    fake.add_workflow("w1", "Loop")
    res = run("workflow", "continue-as-new", "w1", "--input", '{"cursor": 5}', "--new-id", "w1-b")
    assert out_json(res)["workflow_id"] == "w1-b"
    assert fake.last("POST", "/api/v1/workflows/w1/continue-as-new")["body"] == {
        "input": {"cursor": 5},
        "workflow_id": "w1-b",
    }
    assert fake.workflows["w1-b"]["input"] == {"cursor": 5}


# -- schedule --------------------------------------------------------------------------------------------
def test_schedule_lifecycle(run, fake):
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
    assert fake.last("POST", "/api/v1/schedules")["body"] == {
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
    assert row.startswith("nightly") and "0 0 2 * * *" in row and "2023-11-14T23:13:20+00:00" in row
    assert out_json(run("schedule", "describe", "nightly"))["cron_expr"] == "0 0 2 * * *"
    res = run("schedule", "patch", "nightly", "--cron", "0 30 2 * * *", "--input", "null")
    assert out_json(res)["cron_expr"] == "0 30 2 * * *"
    assert fake.last("PATCH")["body"] == {"cron_expr": "0 30 2 * * *", "input": None}
    assert run("schedule", "pause", "nightly", "-o", "table").stdout == "nightly paused\n"
    assert fake.schedules[("main", "nightly")]["paused"] is True
    assert out_json(run("schedule", "resume", "nightly"))["paused"] is False
    trig = out_json(run("schedule", "trigger", "nightly"))
    assert trig["status"] == "PENDING" and trig["workflow_id"] in fake.workflows
    assert fake.last("POST", "/api/v1/schedules/nightly/trigger")["query"] == {"namespace": "main"}
    assert run("schedule", "delete", "nightly", "-o", "table").stdout == "nightly deleted\n"
    assert fake.schedules == {}
    res = run("schedule", "describe", "nightly")
    assert res.exit_code == 1 and res.stderr == "Error: not found: schedule nightly (HTTP 404)\n"


def test_schedule_create_needs_type_and_cron_and_reports_engine_errors(run):
    assert run("schedule", "create", "x", "--cron", "* * * * * *").exit_code == 64
    assert run("schedule", "create", "x", "--type", "T").exit_code == 64
    assert (
        run("schedule", "create", "x", "--type", "T", "--cron", "* * * * * *", "--overlap", "nope").exit_code
        == 64
    )
    res = run("schedule", "create", "x", "--type", "T", "--cron", "* * * * * *", "--timezone", "Mars/Base")
    assert res.exit_code == 1 and "invalid timezone: Mars/Base (HTTP 400)" in res.stderr


def test_schedule_patch_nothing_is_usage_error(run, fake):
    res = run("schedule", "patch", "nightly")
    assert res.exit_code == 64 and "nothing to change" in res.stderr
    assert not any(r["method"] == "PATCH" for r in fake.requests)


def test_schedule_namespace_is_sent(run, fake):
    run("schedule", "create", "s", "--type", "T", "--cron", "* * * * * *", "-n", "billing")
    assert fake.last("POST", "/api/v1/schedules")["body"]["namespace"] == "billing"
    assert [s["name"] for s in out_json(run("schedule", "list", "--namespace", "billing"))] == ["s"]
    assert out_json(run("schedule", "list")) == []


# -- namespace, worker, queue ------------------------------------------------------------------------
def test_namespace_commands(run, fake):
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


def test_worker_list_and_queue_stats(run, fake):
    fake.workers.append(
        {
            "id": "w-0123456789abcdef",
            "namespace": "main",
            "identity": "host-1",
            "task_queue": "q",
            "workflows": ["A"],
            "activities": None,
            "active_tasks": 2,
            "last_heartbeat": 0.0,
            "registered_at": 0.0,
        }
    )
    fake.queues.append({"queue": "q", "pending_activities": 3, "running_activities": 1, "workers": 1})
    res = run("worker", "list", "-o", "table")
    assert res.stdout.splitlines()[0] == "ID                  IDENTITY  QUEUE  ACTIVE  LAST HEARTBEAT"
    assert res.stdout.splitlines()[1].split() == [
        "w-0123456789abcdef",
        "host-1",
        "q",
        "2",
        "1970-01-01T00:00:00Z",
    ]
    assert out_json(run("worker", "list")) == fake.workers
    res = run("queue", "stats", "-o", "table")
    assert [line.split() for line in res.stdout.splitlines()] == [
        ["QUEUE", "PENDING", "RUNNING", "WORKERS"],
        ["q", "3", "1", "1"],
    ]
    assert out_json(run("queue", "stats", "-n", "other")) == fake.queues
    assert fake.last("GET", "/api/v1/queues")["query"] == {"namespace": "other"}


# -- wait and follow (in-process) -----------------------------------------------------------------------
@pytest.mark.parametrize("status,code", [("COMPLETED", 0), ("FAILED", 1), ("CANCELLED", 1)])
def test_wait_exit_codes(run, fake, status, code):
    fake.add_workflow("w1")
    fake.finish("w1", status, error="kaput" if status == "FAILED" else None)
    res = run("workflow", "wait", "w1", "--timeout", "5")
    assert res.exit_code == code
    assert json.loads(res.stdout)["status"] == status
    if code:
        assert res.stderr.startswith(f"Error: workflow w1 ended {status}")
        assert ("kaput" in res.stderr) == (status == "FAILED")
    res = run("workflow", "wait", "w1", "-o", "table")
    assert res.stdout == f"w1  {status}\n"


def test_wait_timeout_and_target(run, fake):
    fake.add_workflow("w1", status="RUNNING")
    res = run("workflow", "wait", "w1", "--timeout", "0.2")
    assert res.exit_code == 2
    assert res.stderr == "Error: timeout after 0.2s waiting for w1 (last status: RUNNING)\n"
    assert res.stdout == ""
    assert run("workflow", "wait", "w1", "--target", "running", "--timeout", "5").exit_code == 0
    assert run("workflow", "wait", "nope", "--timeout", "1").exit_code == 1
    assert run("workflow", "wait", "w1", "--target", "DONE").exit_code == 64


def test_events_follow_prints_until_terminal(run, fake):
    fake.add_workflow("w1")
    fake.append_event("w1", "ActivityScheduled", {"activity_seq": 1})
    fake.finish("w1", "COMPLETED", result=7)
    res = run("workflow", "events", "w1", "--follow")
    assert res.exit_code == 0
    assert [json.loads(line)["event_type"] for line in res.stdout.splitlines()] == [
        "WorkflowStarted",
        "ActivityScheduled",
        "WorkflowCompleted",
    ]
    res = run("workflow", "events", "w1", "-f", "-o", "table")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"]
    assert lines[3].split()[:2] == ["3", "WorkflowCompleted"] and lines[3].endswith("7")
    assert run("workflow", "events", "nope", "--follow").exit_code == 1
