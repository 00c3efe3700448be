"""assay.workflow against fake engines: connect retries, and the fallback for engines without /poll."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assay.lua import ScriptError
from tests.helpers import ROOT, subprocess_env, wait_until


class LegacyEngine(BaseHTTPRequestHandler):
    """An engine that speaks only the upstream endpoints and returns JSON text for activity input."""

    protocol_version = "HTTP/1.1"
    seen: list = []
    handed_out: set = set()

    def log_message(self, *args):
        pass

    def _json(self, status: int, value) -> None:
        body = b"" if value is ... else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._json(200, {"status": "ok"} if self.path == "/api/v1/health" else {"error": "nope"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null")
        path = self.path.removeprefix("/api/v1")
        LegacyEngine.seen.append((path, body))
        h = LegacyEngine.handed_out
        if path == "/workers/register":
            self._json(200, {"worker_id": "w-legacy"})
        elif path == "/poll":
            self._json(404, ...)
        elif path == "/workflow-tasks/poll":
            if "wf" in h:
                self._json(200, None)
            else:
                h.add("wf")
                self._json(
                    200,
                    {
                        "workflow_id": "wf-1",
                        "workflow_type": "Double",
                        "namespace": "main",
                        "task_queue": "legacy",
                        "input": {"n": 21},
                        "history": [{"seq": 1, "event_type": "WorkflowStarted", "payload": {"n": 21}}],
                    },
                )
        elif path == "/tasks/poll":
            if "act" in h:
                self._json(200, {"task": None})
            else:
                h.add("act")
                self._json(
                    200,
                    {
                        "id": 7,
                        "workflow_id": "wf-1",
                        "seq": 1,
                        "name": "double",
                        "input": json.dumps({"n": 21}),
                        "attempt": 1,
                        "max_attempts": 3,
                    },
                )
        else:
            self._json(200, ...)


@pytest.fixture
def legacy_engine():
    LegacyEngine.seen, LegacyEngine.handed_out = [], set()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), LegacyEngine)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


WORKER = """
local workflow = require("assay.workflow")
workflow.connect(arg[1])
workflow.define("Double", function(ctx, input) return ctx:execute_activity("double", input) end)
workflow.activity("double", function(actx, input) return input.n * 2 end)
workflow.listen({ queue = "legacy", heartbeat_interval_secs = 0.2 })
print("listen returned")
"""


@pytest.mark.e2e
def test_worker_falls_back_to_the_separate_poll_endpoints(legacy_engine):
    p = subprocess.Popen(
        [sys.executable, "-m", "assay", "run", "-e", WORKER, legacy_engine],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: any(s[0] == "/tasks/7/complete" for s in LegacyEngine.seen), 15, what="completion")
        wait_until(lambda: any(s[0] == "/workers/heartbeat" for s in LegacyEngine.seen), 15, what="heartbeat")
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    assert out.strip() == "listen returned"
    seen = dict(LegacyEngine.seen)
    assert seen["/workers/register"]["heartbeat_interval_secs"] == 0.2
    assert seen["/workers/register"]["workflows"] == ["Double"] and seen["/workers/register"][
        "activities"
    ] == ["double"]
    cmds = seen["/workflow-tasks/wf-1/commands"]
    assert cmds["worker_id"] == "w-legacy"
    assert cmds["commands"] == [{"type": "ScheduleActivity", "seq": 1, "name": "double", "input": {"n": 21}}]
    assert seen["/tasks/7/complete"] == {"result": 42, "worker_id": "w-legacy"}  # JSON-text input was decoded
    hb = seen["/workers/heartbeat"]
    assert (
        hb["worker_id"] == "w-legacy"
        and hb["identity"].startswith("assay-worker-")
        and hb["queue"] == "legacy"
    )
    assert "using the separate poll endpoints" in err


def test_connect_waits_for_a_starting_engine(lua):
    # the port is bound now but listens only later: until then connections are refused, as by an engine
    # that has not started yet, and no other process can take the port in between
    srv = ThreadingHTTPServer(("127.0.0.1", 0), LegacyEngine, bind_and_activate=False)
    srv.daemon_threads = True
    srv.server_bind()
    port = srv.server_address[1]

    def late_start():
        time.sleep(0.5)  # the engine "starts" half a second after the worker
        srv.server_activate()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        late_start.srv = srv

    with pytest.raises(ScriptError, match="cannot reach engine at http://127.0.0.1"):
        lua(f"require('assay.workflow').connect('http://127.0.0.1:{port}/')")
    t = threading.Thread(target=late_start)
    t.start()
    try:
        r = lua(f"OUT = require('assay.workflow').connect('http://127.0.0.1:{port}/', {{ wait_secs = 10 }})")
        assert r.get("OUT") is True
    finally:
        t.join()
        late_start.srv.shutdown()
        late_start.srv.server_close()
