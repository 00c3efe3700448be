"""bench/stack_floor.py, the stack's floor (the least engine the shared harness can run against), on a real
port: the raw worker protocol, the opt-in protocol the Lua worker uses (batch polls, eager dispatch, sticky
histories, deregister), the SSE completion frame, the durable rows, and a real `assay run` Lua worker."""

from __future__ import annotations

import http.client
import json
import queue
import sqlite3
import subprocess
import sys
import threading

import pytest

from assay.protocol import (
    HISTORY_AFTER,
    HISTORY_LAST_SEQ,
    POLL_IS_HEARTBEAT,
    CommandType,
    EventType,
    SseEvent,
    TaskKind,
    WorkflowStatus,
)
from tests.helpers import ROOT, free_port, stop_process, subprocess_env, wait_until

pytestmark = pytest.mark.e2e

FLOOR = ROOT / "bench" / "stack_floor.py"
API = "/api/v1"
DEADLINE = 15.0  # seconds any single wait may take before the test fails (never reached when it works)

WORKER_LUA = """
local workflow = require("assay.workflow")
local QUEUE = env.get("BENCH_QUEUE")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
workflow.define("Bench", function(ctx, input)
    local last = nil
    for k = 1, input.steps do
        last = ctx:execute_activity("bench_act", { i = input.i, k = k }, { task_queue = QUEUE })
    end
    return { i = input.i, steps = input.steps, last = last }
end)
workflow.activity("bench_act", function(actx, input)
    return { i = input.i, k = input.k, ok = true }
end)
workflow.listen({ queue = QUEUE, identity = "floor-test" })
"""


class Floor:
    """A `stack_floor.py serve` process on a free loopback port, with a temp SQLite file."""

    def __init__(self, tmp_path, server: str) -> None:
        self.db = str(tmp_path / "floor.db")
        self.log_path = tmp_path / "floor.log"
        self.port = free_port()
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, str(FLOOR), "serve", "--port", str(self.port), "--host", "127.0.0.1"]
                + ["--backend", "sqlite:///" + self.db, "--server", server],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=subprocess_env(),
                cwd=str(tmp_path),
            )

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"floor exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                return self.call("GET", "/health")[0] == 200
            except OSError:
                return False

        wait_until(up, DEADLINE, what="the floor's /health")

    def call(self, method: str, path: str, body=None, timeout: float = DEADLINE):
        """-> (status, decoded JSON or None when the body is empty)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            c.request(method, API + path, body=data, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            c.close()

    def rows(self, sql: str, *args) -> list[tuple]:
        db = sqlite3.connect(self.db)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        stop_process(self.proc)


class Stream:
    """GET /events/stream read by a thread: (event, data) frames on a queue."""

    def __init__(self, port: int) -> None:
        self.frames: queue.Queue = queue.Queue()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE * 4)
        self.conn.request("GET", API + "/events/stream", headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert "text/event-stream" in self.resp.getheader("Content-Type", "")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        ev, data = None, []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line == "" and data:
                    self.frames.put((ev, json.loads("\n".join(data))))
                    ev, data = None, []
                elif line.startswith("event:"):
                    ev = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except (OSError, ValueError):
            return

    def wait(self, event: str, wf_id: str) -> dict:
        while True:
            ev, data = self.frames.get(timeout=DEADLINE)  # queue.Empty fails the test
            if ev == event and data.get("workflow_id") == wf_id:
                return data

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["assay", "waitress"])
def floor(request, tmp_path):
    f = Floor(tmp_path, request.param)
    yield f
    f.stop()


def start(f: Floor, wf_id: str, steps: int, q: str) -> None:
    body = {
        "workflow_type": "Bench",
        "workflow_id": wf_id,
        "task_queue": q,
        "input": {"i": 1, "steps": steps},
    }
    st, out = f.call("POST", "/workflows", body)
    assert st == 201 and out["status"] == WorkflowStatus.RUNNING, (st, out)


def event_rows(f: Floor, wf_id: str) -> list[str]:
    return [t for (t,) in f.rows("SELECT type FROM events WHERE wf_id=? ORDER BY seq", wf_id)]


ONE_ACTIVITY = [
    EventType.WorkflowStarted,
    EventType.ActivityScheduled,
    EventType.ActivityCompleted,
    EventType.WorkflowCompleted,
]


def test_raw_protocol_one_activity_workflow(floor):
    stream = Stream(floor.port)
    try:
        st, reg = floor.call(
            "POST",
            "/workers/register",
            {"identity": "t", "queue": "q", "workflows": ["Bench"], "activities": []},
        )
        assert st == 200 and reg["worker_id"]
        who = {"queue": "q", "worker_id": reg["worker_id"], "wait_secs": 5}
        start(floor, "wf-raw", 1, "q")
        st, task = floor.call("POST", "/workflow-tasks/poll", who)
        assert st == 200 and task["workflow_id"] == "wf-raw"
        assert [e["event_type"] for e in task["history"]] == [EventType.WorkflowStarted]
        assert task["input"] == {"i": 1, "steps": 1}
        cmd = {"type": CommandType.ScheduleActivity, "seq": 1, "name": "bench_act", "input": {"k": 1}}
        st, out = floor.call("POST", "/workflow-tasks/wf-raw/commands", {"commands": [cmd]})
        assert (st, out) == (200, None)  # no eager field: the upstream empty 200
        st, act = floor.call("POST", "/tasks/poll", who)
        assert st == 200 and act["input"] == {"k": 1} and act["workflow_id"] == "wf-raw"
        st, out = floor.call("POST", f"/tasks/{act['id']}/complete", {"result": {"ok": True}})
        assert (st, out) == (200, None)
        st, task = floor.call("POST", "/workflow-tasks/poll", who)
        assert [e["event_type"] for e in task["history"]] == ONE_ACTIVITY[:3]
        assert task["history"][2]["payload"]["result"] == {"ok": True}
        done = {"type": CommandType.CompleteWorkflow, "result": {"r": 1}}
        assert floor.call("POST", "/workflow-tasks/wf-raw/commands", {"commands": [done]})[0] == 200
        assert stream.wait(SseEvent.workflow_completed, "wf-raw")["workflow_id"] == "wf-raw"
        st, desc = floor.call("GET", "/workflows/wf-raw")
        assert st == 200 and desc["status"] == WorkflowStatus.COMPLETED
        # durable: committed before the answers
        assert floor.rows("SELECT status, result FROM workflows WHERE id=?", "wf-raw") == [
            (WorkflowStatus.COMPLETED, json.dumps({"r": 1}))
        ]
        assert event_rows(floor, "wf-raw") == ONE_ACTIVITY
        # an empty poll with a small wait answers empty (no hang: the socket timeout would fail it)
        for path, empty in (("/workflow-tasks/poll", None), ("/tasks/poll", {"task": None})):
            assert floor.call("POST", path, dict(who, wait_secs=0.2)) == (200, empty)
        st, out = floor.call("POST", "/poll", dict(who, wait_secs=0.2, max_tasks=4))
        assert (st, out) == (200, {"tasks": []})
    finally:
        stream.close()


def test_eager_batch_and_sticky_protocol(tmp_path):
    f = Floor(tmp_path, "assay")
    stream = Stream(f.port)
    try:
        reg = {
            "identity": "t",
            "queue": "q",
            "workflows": ["Bench"],
            "activities": ["bench_act"],
            "sticky": True,
        }
        st, out = f.call("POST", "/workers/register", reg)
        assert st == 200 and out[POLL_IS_HEARTBEAT] is True
        wid = out["worker_id"]
        assert f.call("POST", "/workers/heartbeat", dict(reg, worker_id=wid))[0] == 200
        start(f, "wf-a", 1, "q")
        start(f, "wf-b", 1, "q")
        poll = {"queue": "q", "worker_id": wid, "wait_secs": 5, "max_tasks": 4, "retry_after": True}
        st, out = f.call("POST", "/poll", poll)
        assert st == 200 and [(t["kind"], t["task"]["workflow_id"]) for t in out["tasks"]] == [
            (TaskKind.workflow_task, "wf-a"),
            (TaskKind.workflow_task, "wf-b"),
        ]
        first = out["tasks"][0]["task"]
        assert first[HISTORY_LAST_SEQ] == 1 and HISTORY_AFTER not in first and len(first["history"]) == 1
        cmd = {"type": CommandType.ScheduleActivity, "seq": 1, "name": "bench_act", "input": {"k": 1}}
        eager = {"eager_activities": 1, "eager_workflow_task": True, "worker_id": wid}
        st, out = f.call("POST", "/workflow-tasks/wf-a/commands", dict(eager, commands=[cmd]))
        assert st == 200 and out["workflow_task"] is None
        (act,) = out["activity_tasks"]  # claimed for the caller: no poll sees it
        assert (act["name"], act["seq"], act["input"]) == ("bench_act", 1, {"k": 1})
        st, out = f.call("POST", f"/tasks/{act['id']}/complete", {"result": 7, "eager_workflow_task": True})
        assert st == 200 and out == {"workflow_task": None}  # no worker_id: nobody to claim it for
        st, out = f.call("POST", "/poll", poll)
        (item,) = out["tasks"]
        task = item["task"]  # sticky: only the events after the ones this worker saw
        assert task[HISTORY_AFTER] == 1 and task[HISTORY_LAST_SEQ] == 3
        assert [e["seq"] for e in task["history"]] == [2, 3]
        st, out = f.call("GET", "/workflows/wf-a/events?after_seq=0&limit=1000")
        assert [e["event_type"] for e in out] == ONE_ACTIVITY[:3]  # a worker without the state fetches it
        done = {"type": CommandType.CompleteWorkflow, "result": 7}
        st, out = f.call("POST", "/workflow-tasks/wf-a/commands", dict(eager, commands=[done]))
        assert (st, out) == (200, {"activity_tasks": [], "workflow_task": None})
        stream.wait(SseEvent.workflow_completed, "wf-a")
        # wf-b: the activity completion hands the next workflow task back to its worker (eager)
        st, out = f.call("POST", "/workflow-tasks/wf-b/commands", dict(eager, commands=[cmd]))
        (act,) = out["activity_tasks"]
        body = {"result": 8, "eager_workflow_task": True, "worker_id": wid}
        st, out = f.call("POST", f"/tasks/{act['id']}/complete", body)
        task = out["workflow_task"]
        assert task["workflow_id"] == "wf-b" and task[HISTORY_AFTER] == 1 and len(task["history"]) == 2
        assert task["history"][-1]["payload"]["result"] == 8
        # deregister ends the worker's held poll at once, empty
        held: dict = {}
        t = threading.Thread(target=lambda: held.update(r=f.call("POST", "/poll", dict(poll, wait_secs=60))))
        t.start()
        assert f.call("POST", f"/workers/{wid}/deregister", {})[0] == 200
        t.join(DEADLINE)
        assert held["r"] == (200, {"tasks": []})
        assert f.call("GET", "/workers")[1] == []
    finally:
        stream.close()
        f.stop()


def test_lua_worker_runs_against_the_floor(tmp_path):
    f = Floor(tmp_path, "assay")
    stream = Stream(f.port)
    script = tmp_path / "worker.lua"
    script.write_text(WORKER_LUA)
    log = tmp_path / "worker.log"
    env = subprocess_env({"ASSAY_ENGINE_URL": f"http://127.0.0.1:{f.port}", "BENCH_QUEUE": "lq"})
    with open(log, "ab") as logf:  # `stack_floor.py run` is assay's own CLI, as the harness runs it
        worker = subprocess.Popen(
            [sys.executable, str(FLOOR), "run", str(script)], stdout=logf, stderr=subprocess.STDOUT, env=env
        )
    try:
        start(f, "lua-1", 1, "lq")
        start(f, "lua-3", 3, "lq")
        for wf_id in ("lua-1", "lua-3"):
            stream.wait(SseEvent.workflow_completed, wf_id)
        assert f.rows("SELECT id, status, result FROM workflows ORDER BY id") == [
            (
                "lua-1",
                WorkflowStatus.COMPLETED,
                json.dumps({"i": 1, "last": {"i": 1, "k": 1, "ok": True}, "steps": 1}),
            ),
            (
                "lua-3",
                WorkflowStatus.COMPLETED,
                json.dumps({"i": 1, "last": {"i": 1, "k": 3, "ok": True}, "steps": 3}),
            ),
        ]
        assert event_rows(f, "lua-1") == ONE_ACTIVITY
        assert event_rows(f, "lua-3") == ONE_ACTIVITY[:1] + ONE_ACTIVITY[1:3] * 3 + ONE_ACTIVITY[3:]
        assert len(f.call("GET", "/workers")[1]) == 1
        assert stop_process(worker) == 0, log.read_text()
        assert f.call("GET", "/workers")[1] == []  # it deregistered on its way out
    finally:
        stop_process(worker)
        stream.close()
        f.stop()
