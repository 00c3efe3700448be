"""The worker's registration (build_id), bad input to the public functions, and `assay run FILE.py`."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assay import workflow
from assay.workflow.process import default_build_id
from tests.lua.conftest import assay_run


class Stub(BaseHTTPRequestHandler):
    """An engine that is healthy and refuses every registration (recording what was sent)."""

    seen: list[dict] = []

    def log_message(self, *a) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, {"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        Stub.seen.append({"path": self.path, "body": json.loads(self.rfile.read(n) or b"null")})
        self._answer(403, {"error": "workers are not welcome here"})


@pytest.fixture
def stub():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Stub.seen = []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@workflow.define("UnitNoop")
def noop(ctx, input):
    return None


def test_registration_sends_the_build_id_and_a_refusal_is_a_clear_error(stub, monkeypatch):
    monkeypatch.setenv("ASSAY_BUILD_ID", "release-42")
    workflow.connect(stub)
    with pytest.raises(
        workflow.WorkerError, match=r"registration refused \(HTTP 403\): workers are not welcome"
    ):
        workflow.listen(queue="unit-q", concurrency=2)
    (reg,) = Stub.seen
    assert reg["path"] == "/api/v1/workers/register"
    b = reg["body"]
    assert b["build_id"] == "release-42" and b["queue"] == "unit-q" and "UnitNoop" in b["workflows"]
    assert b["max_concurrent_workflows"] == 2 and b["namespace"] == "main"


def test_default_build_id_hashes_the_worker_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ASSAY_BUILD_ID", raising=False)
    f = tmp_path / "w.py"
    f.write_bytes(b"print('v1')\n")
    assert default_build_id(str(f)) == hashlib.sha256(b"print('v1')\n").hexdigest()[:12]
    f.write_bytes(b"print('v2')\n")
    assert default_build_id(str(f)) == hashlib.sha256(b"print('v2')\n").hexdigest()[:12]
    monkeypatch.setenv("ASSAY_BUILD_ID", "x" * 200)
    assert default_build_id(str(f)) == "x" * 128


def test_bad_input_gives_clear_errors(stub):
    with pytest.raises(workflow.WorkerError, match="cannot reach engine at http://127.0.0.1:1"):
        workflow.connect("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="not an http"):
        workflow.connect("ftp://x")
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        workflow.define("")
    with pytest.raises(TypeError, match="handler must be callable"):
        workflow.activity("x")(42)
    workflow.connect(stub)
    with pytest.raises(workflow.WorkerError, match="concurrency must be an integer of at least 1"):
        workflow.listen(concurrency=0)


def test_management_functions_are_the_sdk_client(stub):
    c = workflow.connect(stub)
    assert workflow.client() is c
    from assay.sdk import Client

    assert isinstance(c, Client)


def test_assay_run_python_file_errors_and_args(tmp_path):
    ok = tmp_path / "ok.py"
    ok.write_text("import sys\nfrom assay import workflow\nprint('args', sys.argv[1:], workflow.__name__)\n")
    r = assay_run(str(ok), "a", "--b")
    assert (r.returncode, r.stdout.strip()) == (0, "args ['a', '--b'] assay.workflow"), r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    raise ValueError('broken worker')\nf()\n")
    r = assay_run(str(bad))
    assert r.returncode == 1
    assert r.stderr.strip().endswith("ValueError: broken worker") and "runpy" not in r.stderr
    assert f'File "{bad}", line 2' in r.stderr
    code = tmp_path / "code.py"
    code.write_text("import sys\nsys.exit(3)\n")
    assert assay_run(str(code)).returncode == 3


def test_load_worker_file_registers_nothing_globally_and_contacts_no_engine(monkeypatch):
    from tests.python.e2e import PY_WORKER

    monkeypatch.setenv("ASSAY_ENGINE_URL", "http://127.0.0.1:1")  # unreachable: connect must not try
    before = dict(workflow.registry.WORKFLOWS)
    wfs, acts = workflow.load_worker_file(str(PY_WORKER))
    assert {"PyCrashy", "Shift", "Gather"} <= set(wfs) and {"count_me", "nap"} <= set(acts)
    assert "UnitNoop" not in wfs and workflow.registry.WORKFLOWS == before
    # the loaded handler replays a history offline
    from assay.workflow import replay

    hist = [{"seq": 1, "event_type": "WorkflowStarted", "payload": None, "timestamp": 1.0},
            {"seq": 2, "event_type": "ActivityScheduled", "payload": {"activity_seq": 1, "name": "other"},
             "timestamp": 2.0}]  # fmt: skip
    task = {"workflow_id": "s", "workflow_type": "Shift", "run_id": "r", "history": hist}
    assert "activity #1 was 'other'" in replay.run(wfs["Shift"], task).task_error
