"""require("assay.temporal").client: seed 004's monitoring client against a live assay engine. Every method,
the legacy colon methods, the visibility-query subset (each clause, engine-side) and bad input."""

from __future__ import annotations

import json

import pytest

from tests.e2e.rawworker import RawWorker
from tests.helpers import http
from tests.lua.conftest import assay_run

pytestmark = pytest.mark.e2e

NS = "tmon"


def post(engine, path, body=None):
    status, out, _ = http("POST", engine.api + path, body if body is not None else {})
    assert status in (200, 201), (path, status, out)
    return out


def start(engine, wf_id, wf_type, queue, sa=None, ns=NS):
    body = {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue, "namespace": ns}
    if sa is not None:
        body["search_attributes"] = sa
    return post(engine, "/workflows", body)


@pytest.fixture(scope="module")
def world(engine):
    """Workflows in every state in namespace tmon, a schedule, a registered worker."""
    post(engine, "/namespaces", {"name": NS})
    start(engine, "m-run-1", "Alpha", "qa", {"env": "prod", "tier": 2})
    start(engine, "m-run-2", "Beta", "qb", {"env": "dev", "tier": 3})
    start(engine, "m-cancel", "Alpha", "qa")
    post(engine, "/workflows/m-cancel/cancel", {"reason": "nope"})
    start(engine, "m-term", "Beta", "qa")
    post(engine, "/workflows/m-term/terminate", {"reason": "ops"})
    raw = RawWorker(engine.api, queue="qraw", namespace=NS)
    start(engine, "m-fail", "Gamma", "qraw")
    raw.run("m-fail", {"type": "FailWorkflow", "error": "bad thing"})
    start(engine, "m-done", "Gamma", "qraw")
    raw.run("m-done", {"type": "CompleteWorkflow", "result": {"ok": 1}})
    start(engine, "m-cont", "Gamma", "qraw")
    raw.run("m-cont", {"type": "ContinueAsNew", "input": {"n": 2}, "workflow_id": "m-cont-2"})
    post(engine, "/workflows/m-run-1/signal/poke", {"payload": {"x": 1}})
    post(
        engine,
        "/schedules",
        {
            "name": "nightly",
            "namespace": NS,
            "workflow_type": "Alpha",
            "cron_expr": "0 0 2 * * *",
            "task_queue": "qa",
        },
    )
    return raw


def lua(engine, body: str, expect_ok: bool = True):
    code = f'local temporal = require("assay.temporal")\nlocal c = temporal.client("{engine.url}", {{ namespace = "{NS}" }})\n'
    r = assay_run("-e", code + body, timeout=60)
    if expect_ok:
        assert r.returncode == 0, r.stderr
    return r


def out_json(engine, body: str):
    """Run `body`, which must `return` a value; returns it decoded."""
    r = lua(engine, "local function main()\n" + body + "\nend\nprint(json.encode(main()))")
    return json.loads(r.stdout)


def ids(result) -> list[str]:
    return sorted(e["workflow_id"] for e in result["executions"])


def test_health_and_system_info(engine, world):
    r = out_json(engine, "return { c:health(), c:system_info() }")
    assert r[0] is True
    assert r[1]["server"] == "assay" and r[1]["server_version"] and r[1]["namespace"] == NS
    down = out_json(engine, 'local d = temporal.client("HOST") return d:health()'.replace("HOST", engine.url))
    assert down is True


def test_namespaces(engine, world):
    r = out_json(
        engine,
        'return { c.namespaces:list(), c.namespaces:get("tmon"), c:namespaces(), c:namespace_info("tmon") }',
    )
    names = [n["name"] if isinstance(n, dict) and "name" in n else n for n in r[0]["namespaces"]]
    assert NS in json.dumps(names)
    assert r[1]["namespace"] == NS and r[1]["total_workflows"] >= 7
    assert r[2] == r[0] and r[3] == r[1]  # legacy colon methods delegate
    bad = lua(engine, 'c.namespaces:get("no-such-ns")', expect_ok=False)
    assert "namespace 'no-such-ns' not found" in bad.stderr


def test_workflows_list_get_and_statuses(engine, world):
    r = out_json(
        engine,
        """
local all = c.workflows:list()
local st = {}
for _, e in ipairs(all.executions) do st[e.workflow_id] = e.status end
return { st, c.workflows:get("m-done"), c:workflows(), c:workflow("m-term"), c.workflows:list({ page_size = 2 }) }
""",
    )
    assert r[0] == {
        "m-run-1": "RUNNING",
        "m-run-2": "RUNNING",
        "m-cancel": "CANCELED",
        "m-term": "TERMINATED",
        "m-fail": "FAILED",
        "m-done": "COMPLETED",
        "m-cont": "CONTINUED_AS_NEW",
        "m-cont-2": "RUNNING",
    }
    done = r[1]
    assert done["workflow_id"] == "m-done" and done["status"] == "COMPLETED" and done["result"] == {"ok": 1}
    assert done["native_status"] == "COMPLETED" and done["close_time"] >= done["start_time"]
    assert len(r[2]["executions"]) == 8  # legacy c:workflows() delegates to c.workflows:list
    assert r[3]["status"] == "TERMINATED" and r[3]["native_status"] == "FAILED"
    assert len(r[4]["executions"]) == 2


def test_get_with_run_id_and_errors(engine, world):
    run_id = http("GET", engine.api + "/workflows/m-done")[1]["run_id"]
    r = out_json(engine, f'return c.workflows:get("m-done", "{run_id}").run_id')
    assert r == run_id
    bad = lua(engine, 'c.workflows:get("m-done", "other-run")', expect_ok=False)
    assert "has run_id" in bad.stderr and "other-run" in bad.stderr
    bad = lua(engine, 'c.workflows:get("missing-wf")', expect_ok=False)
    assert "workflow 'missing-wf' not found in namespace 'tmon'" in bad.stderr
    bad = lua(engine, "c.workflows:get(12)", expect_ok=False)
    assert "c.workflows:get: workflow_id must be a non-empty string" in bad.stderr


def test_history(engine, world):
    r = out_json(
        engine,
        'return { c.workflows:history("m-run-1"), c.workflows:history("m-run-1", nil, { maximum_page_size = 1 }),'
        ' c:workflow_history("m-done") }',
    )
    types = [e["event_type"] for e in r[0]["events"]]
    assert types[0] == "WorkflowStarted" and "SignalReceived" in types
    assert len(r[1]["events"]) == 1
    assert r[2]["events"][-1]["event_type"] == "WorkflowCompleted"


def test_signal_is_running_cancel_terminate_wait_complete(engine, world):
    start(engine, "m-life-1", "Alpha", "qa")
    start(engine, "m-life-2", "Alpha", "qa")
    start(engine, "m-life-3", "Alpha", "qa")
    r = out_json(
        engine,
        """
local out = {}
out[1] = c.workflows:is_running("m-life-1")
out[2] = c.workflows:signal("m-life-1", "approve", { approved = true })
out[3] = c:signal_workflow("m-life-1", "approve", { approved = false })
out[4] = c:is_workflow_running("m-life-1")
out[5] = c.workflows:cancel("m-life-1")
out[6] = c.workflows:terminate("m-life-2", "cleanup")
out[7] = c:terminate_workflow("m-life-3")
out[8] = c.workflows:wait_complete("m-life-1", 10).status
out[9] = c.workflows:is_running("m-life-2")
out[10] = c:workflow("m-life-3").status
out[11] = c.workflows:wait_complete("m-done", 5).status
return out
""",
    )
    assert r == [True, True, True, True, True, True, True, "CANCELED", False, "TERMINATED", "COMPLETED"]
    sig = [
        e["payload"]
        for e in http("GET", engine.api + "/workflows/m-life-1/events")[1]
        if e["event_type"] == "SignalReceived"
    ]
    assert sig == [
        {"signal": "approve", "payload": {"approved": True}},
        {"signal": "approve", "payload": {"approved": False}},
    ]
    r = lua(engine, 'c.workflows:wait_complete("m-run-2", 0.5)', expect_ok=False)
    assert "still RUNNING after 0.5s" in r.stderr
    r = lua(engine, 'c.workflows:signal("m-done", "late")', expect_ok=False)
    assert "HTTP 409" in r.stderr


def test_wait_complete_wakes_on_the_change(engine, world):
    """wait_complete blocks on the engine's event stream: a terminate from outside ends it."""
    import subprocess
    import sys

    from tests.helpers import ROOT, subprocess_env, wait_until

    start(engine, "m-wait", "Alpha", "qa")
    code = (
        f'local c = require("assay.temporal").client("{engine.url}", {{ namespace = "{NS}" }})\n'
        'print(c.workflows:wait_complete("m-wait", 30).status)'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "assay", "run", "-e", code],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: http("GET", engine.api + "/health")[1].get("held_requests", 0) >= 1, 15, what="the stream"
        )
        post(engine, "/workflows/m-wait/terminate", {"reason": "wake"})
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "TERMINATED"


def test_search_each_clause_engine_side(engine, world):
    r = out_json(
        engine,
        """
local q = {
  "WorkflowType = 'Alpha'",
  "WorkflowId = 'm-term'",
  "ExecutionStatus = 'Running'",
  "ExecutionStatus = 'Completed'",
  "ExecutionStatus = 'Failed'",
  "ExecutionStatus = 'Canceled'",
  "ExecutionStatus = 'Terminated'",
  "ExecutionStatus = 'ContinuedAsNew'",
  "TaskQueue = 'qb'",
  "env = 'prod'",
  "tier = 3",
  "WorkflowType = 'Alpha' AND ExecutionStatus = 'Running' AND env = 'prod'",
  "TaskQueue = 'qa' and WorkflowType = \\"Beta\\"",
}
local out = {}
for i, s in ipairs(q) do
  local ids = {}
  for _, e in ipairs(c.workflows:search(s).executions) do ids[#ids + 1] = e.workflow_id end
  table.sort(ids)
  out[i] = ids
end
out[#out + 1] = c.workflows:list({ query = "WorkflowType = 'Beta'" }).executions[1].workflow_type
out[#out + 1] = #c:search_workflows("ExecutionStatus = 'Terminated'").executions
return out
""",
    )
    alpha = [i for i in r[0]]
    assert "m-run-1" in alpha and "m-cancel" in alpha and "m-run-2" not in alpha
    assert r[1] == ["m-term"]
    assert "m-run-1" in r[2] and "m-run-2" in r[2] and "m-cont-2" in r[2] and "m-done" not in r[2]
    assert r[3] == ["m-done"]  # the continued run is not "Completed" in Temporal's words
    assert r[4] == ["m-fail"]  # the terminated run is not "Failed"
    assert "m-cancel" in r[5] and "m-term" not in r[5]
    assert "m-term" in r[6] and "m-fail" not in r[6]
    assert r[7] == ["m-cont"]
    assert r[8] == ["m-run-2"]
    assert r[9] == ["m-run-1"]
    assert r[10] == ["m-run-2"]
    assert r[11] == ["m-run-1"]
    assert r[12] == ["m-term"]
    assert r[13] == "Beta"
    assert r[14] >= 1


@pytest.mark.parametrize(
    "query,part",
    [
        ("WorkflowType = 'A' OR WorkflowType = 'B'", "'OR'"),
        ("StartTime > '2024-01-01'", "'StartTime >'"),
        ("RunId = 'r1'", "'RunId'"),
        ("WorkflowType != 'A'", "'WorkflowType !='"),
        ("WorkflowType = 'A' ORDER BY StartTime", "'ORDER'"),
        ("(WorkflowType = 'A')", "'(WorkflowType'"),
        ("WorkflowType LIKE 'A%'", "'WorkflowType LIKE'"),
        ("WorkflowType = ", "'WorkflowType = <end of query>'"),
    ],
)
def test_search_unsupported_parts_are_clear_errors(engine, world, query, part):
    r = lua(engine, f"c.workflows:search({json.dumps(query)})", expect_ok=False)
    assert r.returncode != 0
    assert f"unsupported part of the visibility query: {part}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_search_bad_values(engine, world):
    r = lua(engine, "c.workflows:search(\"ExecutionStatus = 'Sleeping'\")", expect_ok=False)
    assert "unknown ExecutionStatus 'Sleeping'" in r.stderr and "Running, Completed" in r.stderr
    r = lua(engine, "c.workflows:search(\"WorkflowId = 'a' AND WorkflowId = 'b'\")", expect_ok=False)
    assert "WorkflowId is given twice" in r.stderr
    r = lua(engine, 'c.workflows:search("WorkflowType = 5")', expect_ok=False)
    assert "WorkflowType needs a quoted string" in r.stderr
    r = lua(engine, 'c.workflows:search("WorkflowType = \'unterminated")', expect_ok=False)
    assert "unterminated string" in r.stderr
    r = lua(engine, "c.workflows:search(42)", expect_ok=False)
    assert "c.workflows:search: query must be a string" in r.stderr
    r = lua(engine, "c.workflows:list({ page_size = 'ten' })", expect_ok=False)
    assert "page_size must be a positive integer" in r.stderr
    r = lua(engine, 'c.workflows:list("x")', expect_ok=False)
    assert "c.workflows:list: opts must be a table" in r.stderr


def test_task_queues_and_schedules(engine, world):
    r = out_json(
        engine,
        """
return { c.task_queues:get("qraw"), c.task_queues:get("qa", { task_queue_type = "workflow" }),
  c.schedules:list(), c.schedules:get("nightly"), c:task_queue("qraw"), c:schedule("nightly"),
  c:schedules({ maximum_page_size = 1 }) }
""",
    )
    assert r[0]["name"] == "qraw" and [p["worker_id"] for p in r[0]["pollers"]] == [world.id]
    assert r[1]["name"] == "qa" and r[1]["stats"]["pending_workflows"] >= 1
    assert [s["name"] for s in r[2]["schedules"]] == ["nightly"]
    assert r[3]["cron_expr"] == "0 0 2 * * *" and r[3]["workflow_type"] == "Alpha"
    assert r[4]["pollers"] == r[0]["pollers"] and r[5]["name"] == "nightly"
    assert len(r[6]["schedules"]) == 1
    bad = lua(engine, 'c.schedules:get("nope")', expect_ok=False)
    assert "schedule 'nope' not found" in bad.stderr
    bad = lua(engine, 'c.task_queues:get("qa", { task_queue_type = "bogus" })', expect_ok=False)
    assert "task_queue_type must be 'workflow' or 'activity'" in bad.stderr


@pytest.mark.parametrize(
    "url,msg",
    [
        ('"not a url"', "url must be host:port (Temporal style) or an http(s):// URL"),
        ("42", "assay.temporal.client: url must be a string, got number"),
        ('"ftp://x:1"', "url must be host:port"),
        ('"127.0.0.1:1"', "cannot reach the assay engine at http://127.0.0.1:1"),
    ],
)
def test_client_bad_url(url, msg):
    r = assay_run("-e", f'require("assay.temporal").client({url})', timeout=30)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_client_host_port_form_and_bad_opts(engine, world):
    hostport = engine.url.removeprefix("http://")
    r = assay_run(
        "-e",
        f'local c = require("assay.temporal").client("{hostport}", {{ namespace = "{NS}" }})\n'
        'print(c.workflows:get("m-done").status)',
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout.strip() == "COMPLETED", r.stderr
    r = assay_run("-e", f'require("assay.temporal").client("{hostport}", "x")', timeout=30)
    assert "opts must be a table" in r.stderr
    r = assay_run("-e", f'require("assay.temporal").client("{hostport}", {{ namespace = 5 }})', timeout=30)
    assert "namespace must be a non-empty string" in r.stderr
