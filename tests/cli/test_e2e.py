"""The real `assay` process against a live engine: every subcommand, every exit code.

Workflows are driven to completion by playing a worker over raw HTTP (register, poll the
workflow task, submit CompleteWorkflow / FailWorkflow).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import uuid

import pytest

from tests.helpers import ROOT, assay_cmd, http, start_engine, subprocess_env, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = start_engine(tmp_path_factory.mktemp("engine"))
    yield eng
    eng.stop()


@pytest.fixture
def cli_env(tmp_path, isolated_env):
    """An environment with no config file, no ASSAY_* variables, a private HOME."""
    env = subprocess_env({"HOME": str(isolated_env), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    for name in list(env):
        if name.startswith("ASSAY_"):
            del env[name]
    return env


@pytest.fixture
def assay(engine, cli_env):
    def run(*args, input=None, env=None, url=True, timeout=30):
        argv = [*assay_cmd(), *(["--engine-url", engine.url] if url else []), *args]
        return subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**cli_env, **(env or {})},
            cwd=str(ROOT),
        )

    return run


def uid(prefix="wf"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Worker:
    """Plays a worker over raw HTTP on its own queue."""

    def __init__(self, engine, queue=None, namespace="main"):
        self.api = engine.api
        self.queue = queue or uid("q")
        status, body, _ = http(
            "POST",
            self.api + "/workers/register",
            {"identity": "cli-test", "queue": self.queue, "namespace": namespace},
        )
        assert status == 200, body
        self.worker_id = body["worker_id"]

    def poll(self, wid):
        def claim():
            status, task, _ = http(
                "POST",
                self.api + "/workflow-tasks/poll",
                {"worker_id": self.worker_id, "queue": self.queue, "wait_secs": 2},
            )
            assert status == 200, task
            return task

        task = wait_until(claim, timeout=15, what=f"workflow task for {wid}")
        assert task["workflow_id"] == wid
        return task

    def commands(self, wid, *commands):
        status, body, _ = http(
            "POST",
            f"{self.api}/workflow-tasks/{wid}/commands",
            {"worker_id": self.worker_id, "commands": list(commands)},
        )
        assert status == 200, body

    def complete(self, wid, result=None):
        self.poll(wid)
        self.commands(wid, {"type": "CompleteWorkflow", "result": result})

    def fail(self, wid, error="boom"):
        self.poll(wid)
        self.commands(wid, {"type": "FailWorkflow", "error": error})


def start(assay, wtype="Demo", queue="default", *extra):
    wid = uid()
    res = assay("workflow", "start", "--type", wtype, "--id", wid, "--queue", queue, *extra)
    assert res.returncode == 0, res.stderr
    return wid


def error_line(res, code):
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


# -- workflow commands -------------------------------------------------------------------------------------
def test_workflow_inspection_commands(assay, engine, tmp_path):
    params = tmp_path / "params.json"
    params.write_text('{"day": "2025-04-18", "n": 3}')
    wid = uid()
    res = assay(
        "workflow",
        "start",
        "--type",
        "Report",
        "--id",
        wid,
        "--input",
        f"@{params}",
        "--search-attrs",
        '{"team": "ops"}',
    )
    assert res.returncode == 0, res.stderr
    started = json.loads(res.stdout)
    assert started["workflow_id"] == wid and started["status"] == "PENDING"

    rec = json.loads(assay("workflow", "describe", wid).stdout)
    assert rec["input"] == {"day": "2025-04-18", "n": 3} and rec["task_queue"] == "default"
    assert rec["search_attributes"]["team"] == "ops"

    rows = json.loads(
        assay("workflow", "list", "--type", "Report", "--search-attrs", '{"team": "ops"}').stdout
    )
    assert wid in [r["id"] for r in rows]
    table = assay("workflow", "list", "--status", "pending", "--limit", "500", "-o", "table").stdout
    assert table.splitlines()[0].split() == ["ID", "TYPE", "STATUS", "QUEUE", "CREATED"]
    assert any(line.split()[:3] == [wid, "Report", "PENDING"] for line in table.splitlines())

    res = assay("workflow", "signal", wid, "approve", "-", input='{"by": "ada"}')
    assert json.loads(res.stdout)["ok"] is True
    events = json.loads(assay("workflow", "events", wid).stdout)
    assert [e["event_type"] for e in events] == ["WorkflowStarted", "SignalReceived"]
    assert events[1]["payload"]["payload"] == {"by": "ada"}
    table = assay("workflow", "events", wid, "-o", "table").stdout.splitlines()
    assert table[0].split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"] and table[2].split()[1] == "SignalReceived"

    assert json.loads(assay("workflow", "children", wid).stdout) == []
    assert "not found" in error_line(assay("workflow", "state", wid), 1)
    assert "(HTTP 404)" in error_line(assay("workflow", "describe", uid("ghost")), 1)


def test_cancel_terminate_continue_as_new(assay, engine):
    wid = start(assay)
    assert (
        assay("workflow", "cancel", wid, "--reason", "no longer needed", "-o", "table").stdout
        == f"cancel requested for {wid}\n"
    )
    assert json.loads(assay("workflow", "describe", wid).stdout)["status"] == "CANCELLED"
    assert "(HTTP 4" in error_line(assay("workflow", "cancel", wid), 1)

    wid = start(assay)
    res = assay("workflow", "terminate", wid, "--reason", "bad deploy")
    assert json.loads(res.stdout) == {"ok": True, "message": f"{wid} terminated", "workflow_id": wid}
    rec = json.loads(assay("workflow", "describe", wid).stdout)
    assert rec["status"] == "FAILED" and rec["error"] == "bad deploy"

    wid = start(assay, "Loop")
    res = assay("workflow", "continue-as-new", wid, "--input", '{"cursor": 5}')
    new = json.loads(res.stdout)
    assert new["status"] == "PENDING" and new["workflow_id"] != wid
    assert json.loads(assay("workflow", "describe", new["workflow_id"]).stdout)["input"] == {"cursor": 5}
    assert json.loads(assay("workflow", "describe", wid).stdout)["status"] == "COMPLETED"


def test_wait_exit_codes_on_completed_and_failed(assay, engine):
    w = Worker(engine)
    ok, bad = start(assay, queue=w.queue), start(assay, queue=w.queue)
    w.complete(ok, {"answer": 42})
    w.fail(bad, "kaput")
    res = assay("workflow", "wait", ok)
    assert res.returncode == 0 and json.loads(res.stdout)["result"] == {"answer": 42}
    assert res.stderr == ""  # no spinner when stderr is not a terminal
    res = assay("workflow", "wait", ok, "-o", "table")
    assert res.stdout == f"{ok}  COMPLETED\n"
    res = assay("workflow", "wait", bad)
    assert json.loads(res.stdout)["status"] == "FAILED"
    assert error_line(res, 1) == f"Error: workflow {bad} ended FAILED: kaput"


def test_wait_on_running_times_out_with_2(assay, engine):
    w = Worker(engine)  # registered on the queue (declaring no types): it could take the workflow
    wid = start(assay, queue=w.queue)
    res = assay("workflow", "wait", wid, "--timeout", "0.3")
    assert error_line(res, 2) == f"Error: timeout after 0.3s waiting for {wid} (last status: PENDING)"
    assert res.stdout == ""


def read_pty_until(fd, needle, timeout=10.0):
    """Read a pty master until `needle` shows up; returns everything read."""
    deadline = time.monotonic() + timeout
    buf = b""
    while needle.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen on the terminal; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {needle!r}; got {buf!r}")
            buf += chunk
    return buf.decode("utf-8", "replace")


def test_wait_follows_the_change_promptly(engine, assay, cli_env):
    w = Worker(engine)
    wid = start(assay, queue=w.queue)
    w.poll(wid)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*assay_cmd(), "--engine-url", engine.url, "workflow", "wait", wid, "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env=cli_env,
    )
    os.close(slave)
    try:
        # the spinner appears once the waiter has opened the stream and described the workflow
        read_pty_until(master, f"waiting for {wid}")
        w.commands(wid, {"type": "CompleteWorkflow", "result": "done"})
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 0
    assert json.loads(out)["status"] == "COMPLETED"
    # that the stream (not a polling interval) wakes the waiter is shown without a clock in
    # tests/cli/test_sdk.py::test_wait_returns_promptly_after_the_change


def test_wait_target_status(assay, engine):
    w = Worker(engine)
    wid = start(assay, queue=w.queue)
    w.poll(wid)  # the claim moves it to RUNNING
    assert assay("workflow", "wait", wid, "--target", "RUNNING", "--timeout", "10").returncode == 0
    w.commands(wid, {"type": "FailWorkflow", "error": "x"})
    res = assay("workflow", "wait", wid, "--target", "running", "--timeout", "10")
    assert "ended FAILED" in error_line(res, 1)


def test_events_follow_ends_on_completion(engine, assay, cli_env):
    w = Worker(engine)
    wid = start(assay, queue=w.queue)
    proc = subprocess.Popen(
        [*assay_cmd(), "--engine-url", engine.url, "workflow", "events", wid, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["event_type"] == "WorkflowStarted"
        assert assay("workflow", "signal", wid, "go", '{"n": 1}').returncode == 0
        second = proc.stdout.readline()
        assert json.loads(second)["event_type"] == "SignalReceived"
        w.complete(wid, {"ok": True})
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    types = [json.loads(line)["event_type"] for line in out.splitlines()]
    assert types == ["WorkflowCompleted"]
    assert json.loads(out.splitlines()[-1])["payload"] == {"ok": True}


def test_events_follow_ends_on_terminate(engine, assay, cli_env):
    wid = start(assay)
    proc = subprocess.Popen(
        [*assay_cmd(), "--engine-url", engine.url, "workflow", "events", wid, "-f", "-o", "table"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:
        assert proc.stdout.readline().split() == ["SEQ", "TYPE", "TIME", "PAYLOAD"]
        assert proc.stdout.readline().split()[:2] == ["1", "WorkflowStarted"]
        assert assay("workflow", "terminate", wid, "--reason", "stop").returncode == 0
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    last = out.splitlines()[-1]
    assert "WorkflowFailed" in last and '"terminated":true' in last


def test_spinner_only_on_a_terminal_stderr(engine, assay, cli_env):
    wid = start(assay)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [*assay_cmd(), "--engine-url", engine.url, "workflow", "wait", wid, "--timeout", "2"],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            env=cli_env,
            timeout=30,
        )
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 2
    assert proc.stdout == ""  # nothing on stdout, spinner or otherwise
    assert f"waiting for {wid}" in err and "PENDING" in err and "s  PENDING" in err
    assert "Error: timeout after 2s" in err


# -- schedules, namespaces, workers, queues ------------------------------------------------------------
def test_schedule_commands(assay):
    name = uid("sched")
    res = assay(
        "schedule",
        "create",
        name,
        "--type",
        "Report",
        "--cron",
        "0 0 3 * * *",
        "--timezone",
        "Europe/Paris",
        "--overlap",
        "skip",
        "--input",
        '{"full": true}',
    )
    rec = json.loads(res.stdout)
    assert rec["name"] == name and rec["timezone"] == "Europe/Paris" and rec["overlap_policy"] == "skip"
    assert rec["input"] == {"full": True} and rec["task_queue"] == "default"
    assert name in [s["name"] for s in json.loads(assay("schedule", "list").stdout)]
    table = assay("schedule", "list", "-o", "table").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "TYPE", "CRON", "TZ", "OVERLAP"]
    assert json.loads(assay("schedule", "describe", name).stdout)["cron_expr"] == "0 0 3 * * *"
    rec = json.loads(
        assay("schedule", "patch", name, "--cron", "0 30 3 * * *", "--overlap", "allow_all").stdout
    )
    assert rec["cron_expr"] == "0 30 3 * * *" and rec["overlap_policy"] == "allow_all"
    assert assay("schedule", "pause", name, "-o", "table").stdout == f"{name} paused\n"
    assert json.loads(assay("schedule", "describe", name).stdout)["paused"] is True
    assert json.loads(assay("schedule", "resume", name).stdout)["paused"] is False
    trig = json.loads(assay("schedule", "trigger", name).stdout)
    assert json.loads(assay("workflow", "describe", trig["workflow_id"]).stdout)["workflow_type"] == "Report"
    assert assay("schedule", "delete", name, "-o", "table").stdout == f"{name} deleted\n"
    assert "(HTTP 404)" in error_line(assay("schedule", "describe", name), 1)
    assert "(HTTP 400)" in error_line(
        assay("schedule", "create", uid("s"), "-t", "T", "--cron", "nonsense"), 1
    )
    assert "nothing to change" in error_line(assay("schedule", "patch", name), 64)


def test_namespace_worker_queue_commands(assay, engine):
    ns = uid("ns")
    assert assay("namespace", "create", ns, "-o", "table").stdout == f"namespace '{ns}' created\n"
    assert ns in [n["name"] for n in json.loads(assay("namespace", "list").stdout)]
    w = Worker(engine, namespace=ns)
    wid = start(assay, "Demo", w.queue, "-n", ns)
    stats = json.loads(assay("namespace", "describe", ns).stdout)
    assert stats["total_workflows"] == 1 and stats["pending"] == 1
    workers = json.loads(assay("worker", "list", "--namespace", ns).stdout)
    assert [x["id"] for x in workers] == [w.worker_id] and workers[0]["task_queue"] == w.queue
    table = assay("worker", "list", "-n", ns, "-o", "table").stdout.splitlines()
    assert table[0].split() == ["ID", "IDENTITY", "QUEUE", "ACTIVE", "LAST", "HEARTBEAT"]
    assert table[1].split()[:3] == [w.worker_id, "cli-test", w.queue]
    queues = json.loads(assay("queue", "stats", "-n", ns).stdout)
    assert w.queue in [q["queue"] for q in queues]
    assert assay("queue", "stats", "-n", ns, "-o", "table").stdout.split()[:4] == [
        "QUEUE",
        "PENDING",
        "RUNNING",
        "WORKERS",
    ]
    w.complete(wid)
    assert assay("-n", ns, "workflow", "wait", wid).returncode == 0
    assert "main" in error_line(assay("namespace", "delete", "main"), 1)
    assert "(HTTP 409)" in error_line(assay("namespace", "create", ns), 1)
    assert assay("namespace", "delete", ns).returncode == 0


# -- environment, config, errors ----------------------------------------------------------------------------
def test_config_discovery_and_env_precedence(engine, assay, tmp_path, cli_env):
    wid = start(assay)
    xdg_cfg = tmp_path / "xdg" / "assay" / "config.yaml"
    xdg_cfg.parent.mkdir(parents=True)
    xdg_cfg.write_text(f"engine_url: {engine.url}\noutput: table\n")
    res = assay("workflow", "describe", wid, url=False)
    assert res.returncode == 0 and res.stdout.splitlines()[0].split() == ["id", wid]
    # env beats the config file
    res = assay("workflow", "describe", wid, url=False, env={"ASSAY_OUTPUT": "json"})
    assert json.loads(res.stdout)["id"] == wid
    res = assay("workflow", "describe", wid, url=False, env={"ASSAY_ENGINE_URL": "http://127.0.0.1:9"})
    assert "engine unreachable at http://127.0.0.1:9" in error_line(res, 1)
    # without XDG_CONFIG_HOME the file in HOME is found
    xdg_cfg.unlink()
    home_cfg = tmp_path / "home" / ".config" / "assay" / "config.yaml"
    home_cfg.parent.mkdir(parents=True)
    home_cfg.write_text(f"engine_url: {engine.url}\n")
    env = {k: v for k, v in cli_env.items() if k != "XDG_CONFIG_HOME"}
    res = subprocess.run(
        [*assay_cmd(), "workflow", "describe", wid], capture_output=True, text=True, env=env, timeout=30
    )
    assert json.loads(res.stdout)["id"] == wid
    home_cfg.write_text("engine_url: [oops\n")
    res = subprocess.run(
        [*assay_cmd(), "queue", "stats"], capture_output=True, text=True, env=env, timeout=30
    )
    line = error_line(res, 1)
    assert str(home_cfg) in line and "line 2" in line


def test_unreachable_engine_and_usage_errors(assay, tmp_path):
    res = assay("--engine-url", "http://127.0.0.1:9", "workflow", "list", url=False)
    assert error_line(res, 1) == (
        "Error: engine unreachable at http://127.0.0.1:9: connection refused. Start the engine with "
        "`assay serve`, or point at yours with --engine-url URL (env ASSAY_ENGINE_URL)"
    )
    assert "invalid JSON" in error_line(assay("workflow", "start", "-t", "T", "--input", "{x"), 64)
    assert "cannot read" in error_line(
        assay("workflow", "start", "-t", "T", "--input", f"@{tmp_path}/no"), 64
    )
    assert "No such option" in error_line(assay("workflow", "list", "--frobnicate"), 64)
    assert "Missing argument" in error_line(assay("workflow", "wait"), 64)


def test_api_key_auth(tmp_path, cli_env):
    eng = start_engine(tmp_path, extra_args=["--auth-api-key"])
    try:
        status, body, _ = http("POST", eng.api + "/api-keys", {"label": "cli"})
        assert status == 201, body
        key = body["plaintext"]
        argv = [*assay_cmd(), "--engine-url", eng.url, "namespace", "list"]
        res = subprocess.run(argv, capture_output=True, text=True, env=cli_env, timeout=30)
        assert "(HTTP 401)" in error_line(res, 1)
        keyfile = tmp_path / "key"
        keyfile.write_text(key + "\n")
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=30,
            env={**cli_env, "ASSAY_API_KEY_FILE": str(keyfile), "ASSAY_API_KEY": "wrong"},
        )
        assert res.returncode == 0, res.stderr
        assert "main" in [n["name"] for n in json.loads(res.stdout)]
        res = subprocess.run(
            [*argv, "--api-key", key], capture_output=True, text=True, env=cli_env, timeout=30
        )
        assert res.returncode == 0, res.stderr
    finally:
        eng.stop()


def test_sdk_worker_calls_round_trip(engine):
    from assay.sdk import Client

    c = Client(engine.url)
    queue = uid("q")
    worker = c.register_worker(
        "sdk-test", queue, workflows=["Pipe"], activities=["fetch"], heartbeat_interval_secs=5
    )
    wid = c.start_workflow("Pipe", uid(), input={"n": 2}, task_queue=queue)["workflow_id"]
    task = c.poll_workflow_task(worker, queue, wait_secs=5)
    assert task["workflow_id"] == wid and task["input"] == {"n": 2}
    c.submit_commands(wid, worker, [{"type": "ScheduleActivity", "seq": 1, "name": "fetch", "input": [1]}])
    act = c.poll_activity_task(worker, queue, wait_secs=5)
    assert act["name"] == "fetch" and act["input"] == [1]
    c.complete_activity(act["id"], {"rows": 3})
    task = c.poll_workflow_task(worker, queue, wait_secs=5)
    assert [e["event_type"] for e in task["history"]][-1] == "ActivityCompleted"
    c.submit_commands(wid, worker, [{"type": "ScheduleActivity", "seq": 2, "name": "fetch"}])
    act = c.poll_activity_task(worker, queue, wait_secs=5)
    c.fail_activity(act["id"], "nope")  # attempt 1 of 3: queued again after the retry backoff
    assert c.poll_activity_task(worker, queue, wait_secs=0) is None
    assert c.wait(wid, timeout=0.2, target="RUNNING")["status"] == "RUNNING"
    c.terminate_workflow(wid, "done testing")
    rec = c.wait(wid, timeout=5)
    assert rec["status"] == "FAILED" and rec["error"] == "done testing"
