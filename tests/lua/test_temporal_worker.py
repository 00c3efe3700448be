"""The Temporal-era `temporal` global (seed 004) against a live assay engine: temporal.worker, the client
(connect / start / signal / query / describe / get_result / cancel / terminate), Temporal activity options
(retry_policy, timeouts), wait_signal, statuses, and the example under examples/temporal-promotion."""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import ROOT, http, wait_until
from tests.lua.conftest import assay_run
from tests.lua.e2e import Worker, describe, events, wait_status

pytestmark = pytest.mark.e2e
EXAMPLE = ROOT / "examples" / "temporal-promotion"

WORKER = """
local handle = temporal.worker({
  url = "%(hostport)s",
  task_queue = "%(queue)s",
  activities = {
    double = function(input) return { v = input.n * 2 } end,
    always_fails = function(input) error("backend unavailable (" .. tostring(input.tag) .. ")") end,
    denied = function(input) error("PERMISSION_DENIED: no access") end,
    slow = function(input) sleep(input.secs) return "late" end,
  },
  workflows = {
    Promo = function(ctx, input)
      local approval = ctx:wait_signal("approve", { timeout = input.window or 60 })
      if not approval then return { status = "timed_out" } end
      local r = ctx:execute_activity("double", { n = input.n },
        { start_to_close_timeout = 30, retry_policy = { maximum_attempts = 3 } })
      local info = ctx:workflow_info()
      local token = ctx:side_effect(function() return "tok-" .. info.workflow_id end)
      ctx:register_query("progress", function() return { stage = "done" } end)
      return { status = "done", v = r.v, by = approval.user, info = info, token = token }
    end,
    Retry = function(ctx, input)
      return ctx:execute_activity(input.activity, { tag = input.tag }, input.opts)
    end,
    Waiter = function(ctx, input)
      ctx:register_query("stage", function() return { stage = "waiting", input = input } end)
      return ctx:wait_signal("never")
    end,
    Boom = function(ctx, input) error("boom: " .. tostring(input)) end,
    SelfCancel = function(ctx, input) ctx:cancel("not needed any more") end,
    Chain = function(ctx, input)
      if input.n < 2 then ctx:continue_as_new({ n = input.n + 1 }) end
      return { final = input.n }
    end,
  },
})
%(tail)s
"""


def hostport(engine) -> str:
    return engine.url.removeprefix("http://")


def write_worker(tmp: Path, engine, queue: str, tail: str = "") -> Path:
    p = tmp / f"temporal-worker-{queue}.lua"
    p.write_text(WORKER % {"hostport": hostport(engine), "queue": queue, "tail": tail})
    return p


@pytest.fixture(scope="module")
def tworker(engine, logdir, tmp_path_factory):
    """A seed-style worker (script ends after temporal.worker{...}) serving queue `tq`."""
    script = write_worker(tmp_path_factory.mktemp("tw"), engine, "tq")
    w = Worker(script, engine.url, logdir, queue="tq")
    w.wait_ready()
    yield w
    w.stop()


def run_client(engine, code: str, timeout: float = 60) -> tuple[list[str], str]:
    """Run a client script; returns its stdout lines (asserting exit 0) and stderr."""
    script = f'local client = temporal.connect({{ url = "{hostport(engine)}" }})\n' + code
    r = assay_run("-e", script, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines(), r.stderr


def run_lua(code: str, timeout: float = 60):
    return assay_run("-e", code, timeout=timeout)


# --- done-when: a seed-style worker with only its url changed -------------------------------------------


def test_start_signal_get_result_with_activity_results(engine, tworker):
    out, _ = run_client(
        engine,
        """
local run = client:start_workflow({ task_queue = "tq", workflow_type = "Promo", workflow_id = "promo-1",
  input = { n = 21 } })
print(run.workflow_id, type(run.run_id))
client:signal_workflow({ workflow_id = "promo-1", signal_name = "approve", input = { user = "jane" } })
print(json.encode(client:get_result({ workflow_id = "promo-1" })))
print(json.encode(client:query_workflow({ workflow_id = "promo-1", query_type = "progress" })))
local d = client:describe_workflow("promo-1")
print(d.status, d.workflow_type, d.run_id == run.run_id, d.history_length > 3, d.close_time >= d.start_time)
""",
    )
    assert out[0] == "promo-1\tstring"
    res = json.loads(out[1])
    assert res["status"] == "done" and res["v"] == 42 and res["by"] == "jane"
    assert res["token"] == "tok-promo-1"
    info = res["info"]
    assert info["workflow_id"] == "promo-1" and info["workflow_type"] == "Promo"
    assert info["namespace"] == "main" and info["task_queue"] == "tq" and info["attempt"] == 1
    assert isinstance(info["start_time"], float)
    assert json.loads(out[2]) == {"stage": "done"}
    assert out[3] == "COMPLETED\tPromo\ttrue\ttrue\ttrue"
    # the Temporal option names reached the engine as native options
    (act,) = [e for e in events(engine, "promo-1") if e["event_type"] == "ActivityScheduled"]
    status, rec, _ = http("GET", engine.api + f"/activities/{act['payload']['activity_id']}")
    assert rec["start_to_close_secs"] == 30 and rec["max_attempts"] == 3


def test_module_level_start_workflow_after_connect(engine, tworker):
    r = run_lua(
        f"""
temporal.connect({{ url = "{engine.url}" }})
local run = temporal.start_workflow({{ task_queue = "tq", workflow_type = "Promo", workflow_id = "promo-mod",
  input = {{ n = 1, window = 30 }} }})
temporal.signal_workflow({{ workflow_id = run.workflow_id, signal_name = "approve", input = {{ user = "bo" }} }})
print(temporal.get_result({{ workflow_id = run.workflow_id }}).v)
local h = temporal.start({{ url = "{hostport(engine)}", task_queue = "tq", workflow_type = "Boom",
  workflow_id = "boom-oneshot", input = 1 }})
print(h.workflow_id)
"""
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "boom-oneshot"]


def test_wait_signal_timeout_returns_nil(engine, tworker):
    out, _ = run_client(
        engine,
        """
client:start_workflow({ task_queue = "tq", workflow_type = "Promo", workflow_id = "promo-timeout",
  input = { n = 1, window = 1 } })
print(json.encode(client:get_result({ workflow_id = "promo-timeout" })))
""",
    )
    assert json.loads(out[0]) == {"status": "timed_out"}
    types = [e["event_type"] for e in events(engine, "promo-timeout")]
    assert "TimerFired" in types and "ActivityScheduled" not in types


def attempts(engine, wf_id: str) -> list[dict]:
    return [e["payload"] for e in events(engine, wf_id) if e["event_type"] == "ActivityFailed"]


def test_maximum_attempts_two_makes_exactly_two_attempts(engine, tworker):
    r = run_lua(
        f"""
local client = temporal.connect({{ url = "{hostport(engine)}" }})
client:start_workflow({{ task_queue = "tq", workflow_type = "Retry", workflow_id = "retry-2",
  input = {{ activity = "always_fails", tag = "a", opts = {{ retry_policy = {{ maximum_attempts = 2,
  initial_interval = 0.1 }} }} }} }})
local ok, err = pcall(client.get_result, client, {{ workflow_id = "retry-2" }})
print(ok, err)
"""
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("false\t") and "failed" in r.stdout and "backend unavailable (a)" in r.stdout
    (p,) = attempts(engine, "retry-2")
    assert p["final_attempt"] == 2
    status, rec, _ = http("GET", engine.api + f"/activities/{p['activity_id']}")
    assert rec["attempt"] == 2 and rec["max_attempts"] == 2 and rec["status"] == "FAILED"


def test_non_retryable_errors_stop_retries(engine, tworker):
    run_lua(
        f"""
local client = temporal.connect({{ url = "{hostport(engine)}" }})
client:start_workflow({{ task_queue = "tq", workflow_type = "Retry", workflow_id = "retry-nr",
  input = {{ activity = "denied", opts = {{ retry_policy = {{ maximum_attempts = 5, initial_interval = 0.1,
  non_retryable_errors = {{ "PERMISSION_DENIED" }} }} }} }} }})
"""
    )
    wait_status(engine, "retry-nr", "FAILED")
    (p,) = attempts(engine, "retry-nr")
    assert p["final_attempt"] == 1 and "PERMISSION_DENIED" in p["error"]


def test_maximum_attempts_zero_is_unlimited(engine, tworker):
    run_lua(
        f"""
local client = temporal.connect({{ url = "{hostport(engine)}" }})
client:start_workflow({{ task_queue = "tq", workflow_type = "Retry", workflow_id = "retry-0",
  input = {{ activity = "always_fails", opts = {{ retry_policy = {{ maximum_attempts = 0,
  initial_interval = 0.05, maximum_interval = 0.05 }} }} }} }})
"""
    )
    aid = wait_until(
        lambda: next(
            (
                e["payload"]["activity_id"]
                for e in events(engine, "retry-0")
                if e["event_type"] == "ActivityScheduled"
            ),
            None,
        ),
        20,
    )
    wait_until(
        lambda: http("GET", engine.api + f"/activities/{aid}")[1]["attempt"] >= 4, 30, what="4 attempts"
    )
    rec = http("GET", engine.api + f"/activities/{aid}")[1]
    assert rec["max_attempts"] >= 10_000 and rec["status"] in ("PENDING", "RUNNING")
    http("POST", engine.api + "/workflows/retry-0/terminate", {"reason": "enough"})


def test_schedule_to_close_timeout_fails_the_activity(engine, tworker):
    r = run_lua(
        f"""
local client = temporal.connect({{ url = "{hostport(engine)}" }})
client:start_workflow({{ task_queue = "tq", workflow_type = "Retry", workflow_id = "stc-1",
  input = {{ activity = "slow", secs = 3, opts = {{ schedule_to_close_timeout = 1,
  retry_policy = {{ maximum_attempts = 5 }} }} }} }})
local ok, err = pcall(client.get_result, client, {{ workflow_id = "stc-1" }})
print(ok, err)
"""
    )
    assert r.returncode == 0, r.stderr
    assert "schedule_to_close 1s exceeded" in r.stdout
    (p,) = attempts(engine, "stc-1")
    assert p["final_attempt"] == 1


def test_statuses_in_temporal_spelling(engine, tworker):
    out, _ = run_client(
        engine,
        """
for _, id in ipairs({ "st-cancel", "st-term", "st-run" }) do
  client:start_workflow({ task_queue = "tq", workflow_type = "Waiter", workflow_id = id, input = { who = id } })
end
client:start_workflow({ task_queue = "tq", workflow_type = "Boom", workflow_id = "st-fail", input = 7 })
client:start_workflow({ task_queue = "tq", workflow_type = "Chain", workflow_id = "st-chain", input = { n = 0 } })
client:start_workflow({ task_queue = "tq", workflow_type = "SelfCancel", workflow_id = "st-self" })
-- a query registered by a running workflow
local q
for _ = 1, 200 do
  local ok, v = pcall(client.query_workflow, client, { workflow_id = "st-run", query_type = "stage" })
  if ok then q = v break end
  sleep(0.05)
end
print(json.encode(q))
print(select(2, pcall(client.query_workflow, client, { workflow_id = "st-run", query_type = "stage", input = 1 })))
print(client:describe_workflow("st-run").status)
client:cancel_workflow("st-cancel")
client:terminate_workflow("st-term", "operator said so")
for _, id in ipairs({ "st-cancel", "st-term", "st-fail", "st-self" }) do
  local ok, err = pcall(client.get_result, client, { workflow_id = id })
  print(id, ok, err)
  print(id, client:describe_workflow(id).status)
end
print(json.encode(client:get_result({ workflow_id = "st-chain" })))
print("st-chain", client:describe_workflow("st-chain").status)
local ok, err = pcall(client.get_result, client, { workflow_id = "st-chain", follow_runs = false })
print(ok, json.encode(err))
local mon = require("assay.temporal").client("HOST")
for _, id in ipairs({ "st-run", "st-cancel", "st-term", "st-fail", "st-chain", "promo-1" }) do
  print("get", id, mon.workflows:get(id).status)
end
""".replace("HOST", engine.url),
    )
    assert json.loads(out[0]) == {"stage": "waiting", "input": {"who": "st-run"}}
    assert "queries on assay read the state" in out[1] and "no input" in out[1]
    assert out[2] == "RUNNING"
    text = "\n".join(out)
    assert "st-cancel\tCANCELED" in text and "st-term\tTERMINATED" in text
    assert "st-fail\tFAILED" in text and "st-self\tCANCELED" in text
    assert "workflow 'st-term' was terminated: operator said so" in text
    assert "workflow 'st-fail' failed: " in text and "boom: 7" in text
    assert "workflow 'st-self' was canceled: not needed any more" in text
    assert json.loads(out[11]) == {"final": 2}
    assert out[12] == "st-chain\tCONTINUED_AS_NEW"
    assert out[13].startswith("true\t") and "continued_as_new" in out[13]
    gets = {line.split("\t")[1]: line.split("\t")[2] for line in out if line.startswith("get\t")}
    assert gets == {
        "st-run": "RUNNING",
        "st-cancel": "CANCELED",
        "st-term": "TERMINATED",
        "st-fail": "FAILED",
        "st-chain": "CONTINUED_AS_NEW",
        "promo-1": "COMPLETED",
    }
    # natively: terminate is FAILED + terminated; ctx:cancel(reason) is on the event and in `error`
    assert (
        describe(engine, "st-term")["status"] == "FAILED"
        and describe(engine, "st-term")["terminated"] is True
    )
    d = describe(engine, "st-self")
    assert d["status"] == "CANCELLED" and d["error"] == "not needed any more"
    (ev,) = [e for e in events(engine, "st-self") if e["event_type"] == "WorkflowCancelled"]
    assert ev["payload"] == {"reason": "not needed any more"}
    http("POST", engine.api + "/workflows/st-run/terminate", {})


def test_unknown_option_keys_are_reported_once_each(engine, logdir, tmp_path):
    tail = """
local client = temporal.connect({ url = "HOST" })
for i = 1, 2 do
  client:start_workflow({ task_queue = "tq-warn", workflow_type = "Retry", workflow_id = "warn-" .. i,
    input = { activity = "double", opts = { bogus_option = 1, retry_policy = { maximum_attempts = 2, jitter = 1 } } } })
end
""".replace("HOST", hostport(engine))
    w = Worker(write_worker(tmp_path, engine, "tq-warn", tail), engine.url, logdir, queue="tq-warn")
    try:
        w.wait_ready()
        # the script starts them after temporal.worker{...} returned: wait until they exist
        for wid in ("warn-1", "warn-2"):
            wait_until(lambda wid=wid: http("GET", engine.api + f"/workflows/{wid}")[0] == 200, 20, what=wid)
        wait_status(engine, "warn-1", worker=w)
        wait_status(engine, "warn-2", worker=w)
        log = w.log()
        assert log.count("unknown option 'bogus_option'") == 1, log
        assert log.count("unknown option 'retry_policy.jitter'") == 1, log
    finally:
        w.stop()


def test_bad_option_types_fail_the_workflow_naming_the_field(engine, tworker):
    cases = {
        "bad-stc": (
            '{ start_to_close_timeout = "30" }',
            "opts.start_to_close_timeout must be a number, got string",
        ),
        "bad-rp": ("{ retry_policy = 3 }", "opts.retry_policy must be a table"),
        "bad-max": (
            "{ retry_policy = { maximum_attempts = 1.5 } }",
            "opts.retry_policy.maximum_attempts must be a non-negative integer",
        ),
        "bad-nre": (
            '{ retry_policy = { non_retryable_errors = { "X", 4 } } }',
            "opts.retry_policy.non_retryable_errors[2] must be a string",
        ),
        "bad-coef": (
            "{ retry_policy = { backoff_coefficient = 0.5 } }",
            "backoff_coefficient must be a number >= 1",
        ),
    }
    code = "\n".join(
        f'client:start_workflow({{ task_queue = "tq", workflow_type = "Retry", workflow_id = "{wid}", '
        f'input = {{ activity = "double", opts = {opts} }} }})'
        for wid, (opts, _) in cases.items()
    )
    run_client(engine, code)
    for wid, (_, msg) in cases.items():
        d = wait_status(engine, wid, "FAILED")
        assert msg in d["error"], (wid, d["error"])


def test_client_bad_input_is_a_lua_error_naming_the_field(engine):
    checks = [
        ('temporal.connect({ url = "not a url" })', "url must be host:port"),
        ("temporal.connect({ url = 8080 })", "temporal.connect: url must be a string"),
        ("temporal.connect()", "temporal.connect: expects a table"),
        ('temporal.connect({ url = "127.0.0.1:1" })', "cannot reach the assay engine at http://127.0.0.1:1"),
        ('temporal.start_workflow({ workflow_type = "X", workflow_id = "x" })', "call temporal.connect"),
        (
            'C:start_workflow({ workflow_type = "X" })',
            "client:start_workflow: workflow_id must be a non-empty string",
        ),
        (
            'C:start_workflow({ workflow_type = 5, workflow_id = "x" })',
            "workflow_type must be a non-empty string",
        ),
        ('C:signal_workflow({ workflow_id = "x" })', "client:signal_workflow: signal_name must be"),
        ("C:describe_workflow(42)", "client:describe_workflow: workflow_id must be"),
        ('C:describe_workflow("nope-nope")', "workflow 'nope-nope' not found"),
        ('C:get_result({ workflow_id = "nope-nope" })', "workflow 'nope-nope' not found"),
        ('C:get_result({ workflow_id = "x", follow_runs = "yes" })', "follow_runs must be a boolean"),
        ('C:query_workflow({ workflow_id = "x" })', "query_type must be a non-empty string"),
        (
            'C:start_workflow({ workflow_type = "X", workflow_id = "x", input = { f = print } })',
            "cannot be encoded",
        ),
        ('temporal.worker({ url = "HOST", activities = {} })', "temporal.worker: task_queue must be"),
        ('temporal.worker({ url = "HOST", task_queue = "q" })', "give at least one workflow or activity"),
        (
            'temporal.worker({ url = "HOST", task_queue = "q", activities = { a = 1 } })',
            "activities.a must be a function",
        ),
        ('temporal.worker({ url = "HOST", task_queue = "q", workflows = "x" })', "workflows must be a table"),
    ]
    for code, msg in checks:
        full = f'C = temporal.connect({{ url = "{engine.url}" }})\n' if code.startswith("C:") else ""
        r = run_lua(full + code.replace("HOST", engine.url))
        assert r.returncode != 0, code
        assert msg in r.stderr, (code, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr


def test_worker_script_serves_until_sigterm_and_deregisters(engine, logdir, tmp_path):
    w = Worker(write_worker(tmp_path, engine, "tq-life"), engine.url, logdir, queue="tq-life")
    w.wait_ready()
    wid = wait_until(
        lambda: next(
            (x["id"] for x in http("GET", engine.api + "/workers")[1] if x["task_queue"] == "tq-life"), None
        ),
        10,
    )
    assert w.proc.poll() is None  # the script has ended; the handle keeps `assay run` serving
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(15) == 0, w.log()
    assert wid not in [x["id"] for x in http("GET", engine.api + "/workers")[1]]
    assert "stopped" in w.log()


def test_handle_shutdown_ends_the_script(engine, tmp_path):
    tail = """
print(handle:is_running())
handle:shutdown()
print(handle:is_running())
"""
    r = assay_run(str(write_worker(tmp_path, engine, "tq-shut", tail)), timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["true", "false"]


# --- the example -------------------------------------------------------------------------------------


class FakeGitOps(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
        FakeGitOps.received.append((self.path, body))
        if self.path == "/api/commits":
            code, out = 201, {"short_id": "c0ffee1"}
        else:
            code, out = 200, {"ok": True}
        data = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_example_temporal_promotion(engine, logdir):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitOps)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    env = {
        "GITOPS_URL": base + "/api",
        "CHAT_WEBHOOK": base + "/hook",
        "PROMOTION_QUEUE": "ex-promo",
        "USER": "ada",
    }
    w = Worker(EXAMPLE / "worker.lua", engine.url, logdir, queue="ex-promo", env=env)
    try:
        w.wait_ready()
        r = assay_run(
            str(EXAMPLE / "start.lua"),
            "v1.4.2",
            "prod",
            env={**env, "ASSAY_ENGINE_URL": hostport(engine)},
            timeout=60,
        )
        assert r.returncode == 0, r.stderr + w.log()
        lines = r.stdout.splitlines()
        assert lines[0] == "started promote-v1.4.2-to-prod"
        assert json.loads(lines[1]) == {
            "status": "promoted",
            "version": "v1.4.2",
            "commit": "c0ffee1",
            "approved_by": "ada",
            "announced": True,
            "queue": "ex-promo",
        }
        assert lines[2] == "COMPLETED"
        paths = [p for p, _ in FakeGitOps.received]
        assert paths == ["/api/commits", "/hook"]
        assert FakeGitOps.received[0][1]["content"] == "v1.4.2"
        assert "c0ffee1" in FakeGitOps.received[1][1]["text"]
    finally:
        w.stop()
        srv.shutdown()
