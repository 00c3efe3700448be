"""Helpers for the end-to-end tests: a live engine, `assay run` worker processes, workflow calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, http, kill_process, stop_process, subprocess_env, wait_until

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")

# Fast heartbeats (lease extension) and a short reconnect backoff for every test worker.
WORKER_ENV = {
    "ASSAY_WORKER_HEARTBEAT_SECS": "0.5",
    "ASSAY_WORKER_MAX_BACKOFF_SECS": "1",
    "ASSAY_WORKER_POLL_WAIT_SECS": "10",
}


class Worker:
    """An `assay run SCRIPT` subprocess; stdout+stderr go to a log file."""

    def __init__(
        self,
        script: Path | str,
        engine_url: str,
        log_dir: Path,
        queue: str = "default",
        env: dict | None = None,
        args: tuple = (),
    ) -> None:
        self.log_path = Path(log_dir) / f"worker-{Path(script).stem}-{queue}-{os.getpid()}-{id(self)}.log"
        full = {**WORKER_ENV, "ASSAY_ENGINE_URL": engine_url, "ASSAY_QUEUE": queue, **(env or {})}
        logf = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assay", "run", str(script), *args],
            cwd=str(ROOT),
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=subprocess_env(full),
        )
        logf.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            return " listening on queue " in self.log()

        wait_until(ready, timeout, what="worker to listen")

    def stop(self, timeout: float = 15.0) -> int:
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        kill_process(self.proc)


def start(engine, wf_type: str, wf_id: str, input=None, queue: str = "default", **extra) -> dict:
    body = {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue, **extra}
    if input is not None:
        body["input"] = input
    status, out, _ = http("POST", engine.api + "/workflows", body)
    assert status == 201, (status, out)
    return out


def describe(engine, wf_id: str) -> dict:
    status, out, _ = http("GET", engine.api + f"/workflows/{wf_id}")
    assert status == 200, (status, out)
    return out


def wait_status(
    engine, wf_id: str, statuses=TERMINAL, timeout: float = 20.0, worker: Worker | None = None
) -> dict:
    statuses = (statuses,) if isinstance(statuses, str) else statuses
    try:
        return wait_until(
            lambda: (lambda d: d if d["status"] in statuses else None)(describe(engine, wf_id)),
            timeout,
            interval=0.05,
            what=f"{wf_id} to reach {statuses}",
        )
    except AssertionError:
        if worker is not None:
            print(worker.log())
        print(events(engine, wf_id))
        raise


def events(engine, wf_id: str) -> list[dict]:
    status, out, _ = http("GET", engine.api + f"/workflows/{wf_id}/events")
    assert status == 200, (status, out)
    return out


def event_types(engine, wf_id: str) -> list[str]:
    return [e["event_type"] for e in events(engine, wf_id)]


def signal(engine, wf_id: str, name: str, payload=None) -> None:
    body = {} if payload is None else {"payload": payload}
    status, out, _ = http("POST", engine.api + f"/workflows/{wf_id}/signal/{name}", body)
    assert status in (200, 201, 204), (status, out)


def state(engine, wf_id: str, name: str | None = None):
    status, out, _ = http("GET", engine.api + f"/workflows/{wf_id}/state" + (f"/{name}" if name else ""))
    return out if status == 200 else None
