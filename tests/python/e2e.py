"""Helpers for the Python-worker end-to-end tests: worker processes (`assay run X.py` or `python X.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, subprocess_env
from tests.lua.e2e import WORKER_ENV, Worker

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers"
PY_WORKER = WORKERS / "py_worker.py"


class PyWorker(Worker):
    """A Python worker process; `direct=True` runs `python FILE` instead of `assay run FILE`."""

    def __init__(self, script, engine_url, log_dir, queue="default", env=None, direct=False) -> None:
        if not direct:
            super().__init__(script, engine_url, log_dir, queue=queue, env=env)
            return
        self.log_path = Path(log_dir) / f"pyworker-{Path(script).stem}-{queue}-{id(self)}.log"
        full = {**WORKER_ENV, "ASSAY_ENGINE_URL": engine_url, "ASSAY_QUEUE": queue, **(env or {})}
        logf = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=str(ROOT), stdout=logf, stderr=subprocess.STDOUT,
            env=subprocess_env(full),
        )  # fmt: skip
        logf.close()
