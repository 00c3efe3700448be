"""End to end from the one file: engine, Lua worker and operator CLI all from assay.pyz, with only a
bare python3 (``-I -S``, an empty HOME, no venv, nothing pip-installed)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from assay._zipapp import platform_tag
from tests.helpers import ROOT, free_port, http, wait_until
from tests.zipapp.conftest import Bare

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "examples" / "workflows" / "hello-workflow" / "worker.lua"

WORKER = """\
-- exercises require("assay.workflow") and stdlib modules that come from the archive (yaml: PyYAML)
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))

workflow.define("ZipHello", function(ctx, input)
  local greeting = ctx:execute_activity("greet", input.name)
  return { greeting = greeting, parsed = ctx:execute_activity("parse", "answer: 42") }
end)

workflow.activity("greet", function(actx, name) return "hello, " .. name end)
workflow.activity("parse", function(actx, doc) return yaml.parse(doc).answer end)

workflow.listen({ queue = "zipapp" })
"""


class Proc:
    def __init__(self, bare: Bare, args: list[str], log: Path, **env: str) -> None:
        self.log_path = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [*bare.argv, *args],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=bare.env(**env),
                cwd=str(bare.home),
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def engine(bare: Bare, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = Proc(
        bare,
        ["serve", "--port", str(port), "--backend", f"sqlite:///{tmp_path / 'engine.db'}"],
        tmp_path / "engine.log",
    )

    def up():
        if p.proc.poll() is not None:
            raise AssertionError(f"engine exited with {p.proc.returncode}:\n{p.log()}")
        try:
            return http("GET", url + "/api/v1/health", timeout=2)[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, 30, what="engine from assay.pyz")
        yield url
    finally:
        p.stop()


def cli(bare: Bare, url: str, *args: str, timeout: float = 60):
    proc = bare.run("--engine-url", url, "-o", "json", *args, timeout=timeout)
    return proc


def extracted(bare: Bare) -> list[Path]:
    return sorted(bare.cache.glob(f"*/{platform_tag()}"))


def test_engine_worker_and_cli_from_the_pyz(bare: Bare, engine: str, tmp_path):
    # the engine serves its data files from inside the archive
    st, body, _ = http("GET", engine + "/workflow/")
    assert st == 200 and "<html" in body.lower()
    assert http("GET", engine + "/workflow/app.js")[0] == 200
    assert http("GET", engine + "/api/v1/docs/swagger-ui.css")[0] == 200
    st, spec, _ = http("GET", engine + "/api/v1/openapi.json")
    assert st == 200 and spec["openapi"].startswith("3.")
    assert extracted(bare) == []  # serve needs no native code: nothing extracted

    script = tmp_path / "worker.lua"
    script.write_text(WORKER)
    worker = Proc(bare, ["run", str(script)], tmp_path / "worker.log", ASSAY_ENGINE_URL=engine)
    try:
        started = cli(
            bare,
            engine,
            "workflow",
            "start",
            "--type",
            "ZipHello",
            "--id",
            "wf-zipapp-1",
            "--queue",
            "zipapp",
            "--input",
            '{"name": "ada"}',
        )
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["workflow_id"] == "wf-zipapp-1"
        done = cli(bare, engine, "workflow", "wait", "wf-zipapp-1", "--timeout", "30", timeout=45)
        assert done.returncode == 0, (done.stdout, done.stderr, worker.log())
        rec = json.loads(done.stdout)
        assert rec["status"] == "COMPLETED"
        assert rec["result"] == {"greeting": "hello, ada", "parsed": 42}
        workers = cli(bare, engine, "worker", "list")
        assert workers.returncode == 0, workers.stderr
        assert any(w.get("task_queue", w.get("queue")) == "zipapp" for w in json.loads(workers.stdout))
    finally:
        code = worker.stop()
    assert code == 0, worker.log()
    assert len(extracted(bare)) == 1  # `run` extracted lupa, once

    # the other groups, against the live engine (tzdata for schedules, PyYAML for --config)
    sched = cli(
        bare,
        engine,
        "schedule",
        "create",
        "nightly",
        "--type",
        "ZipHello",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--queue",
        "zipapp",
    )
    assert sched.returncode == 0, sched.stderr
    desc = cli(bare, engine, "schedule", "describe", "nightly")
    assert desc.returncode == 0, desc.stderr
    assert re.search(r"T03:00:00\+0[12]:00", desc.stdout), desc.stdout  # next fires in Berlin time
    config = bare.home / "assay.yaml"
    config.write_text(f"engine_url: {engine}\nnamespace: main\n")
    ns = bare.run("--config", str(config), "-o", "json", "namespace", "list")
    assert ns.returncode == 0, ns.stderr
    assert "main" in [n.get("name") for n in json.loads(ns.stdout)]
    for args in (
        ["queue", "stats"],
        ["workflow", "list"],
        ["workflow", "events", "wf-zipapp-1"],
        ["schedule", "list"],
    ):
        proc = cli(bare, engine, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        json.loads(proc.stdout)


def test_hello_example_from_the_pyz(bare: Bare, engine: str, tmp_path):
    """examples/workflows/hello-workflow as its README runs it, with assay.pyz as `assay`."""
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE.relative_to(ROOT)} does not exist yet (the inline worker above covers `run`)")
    worker = Proc(bare, ["run", str(EXAMPLE)], tmp_path / "worker.log", ASSAY_ENGINE_URL=engine)
    try:
        started = cli(
            bare,
            engine,
            "workflow",
            "start",
            "--type",
            "HelloWorkflow",
            "--id",
            "hello-1",
            "--input",
            '{"name": "Ada"}',
        )
        assert started.returncode == 0, started.stderr
        done = cli(bare, engine, "workflow", "wait", "hello-1", "--timeout", "30", timeout=45)
        assert done.returncode == 0, (done.stdout, done.stderr, worker.log())
        rec = json.loads(done.stdout)
        assert rec["status"] == "COMPLETED"
        assert rec["result"]["greeting"] == "Hello, Ada!"
        starter = EXAMPLE.with_name("start.lua")
        if starter.is_file():
            proc = bare.run("run", str(starter), "Grace", ASSAY_ENGINE_URL=engine)
            assert proc.returncode == 0, (proc.stderr, worker.log())
            assert proc.stdout.strip() == "Hello, Grace!"
    finally:
        code = worker.stop()
    assert code == 0, worker.log()
