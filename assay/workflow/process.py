"""The Python worker process around the loop: settings, build id, logging, stop signals."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Protocol

from assay.workflow.errors import WorkerError

log = logging.getLogger("assay.workflow")


class Stoppable(Protocol):
    def request_stop(self) -> None: ...


def worker_settings(where: str) -> Any:
    """The ASSAY_WORKER_* / ASSAY_BUILD_ID defaults (declared in assay/config.py); a bad value names it."""
    from assay.config import WorkerSettings, load_scope
    from assay.errors import ConfigError

    try:
        return load_scope(WorkerSettings)
    except ConfigError as e:
        raise WorkerError(f"{where}: {e.message}") from None


def default_build_id(path: str | None = None) -> str | None:
    """ASSAY_BUILD_ID, else the first 12 hex digits of sha256 of the worker file's bytes."""
    env = worker_settings("workflow.listen").build_id
    if env:
        return str(env)[:128]
    if path is None:
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:12]
    except OSError:
        return None


def ensure_logging() -> None:
    """Log to stderr when the program did not configure logging (as `assay run` does)."""
    lg = logging.getLogger("assay")
    if lg.handlers or logging.getLogger().handlers:
        return
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)-5s %(message)s", "%H:%M:%S"))
    lg.addHandler(h)
    lg.propagate = False
    from assay.config import SETTINGS_BY_NAME, from_env

    level = str(from_env(SETTINGS_BY_NAME["log_level"], strict=False)).upper()
    lg.setLevel(getattr(logging, level, logging.INFO))


class StopSignals:
    """First SIGINT/SIGTERM: stop gracefully (finish the tasks in hand). Second: exit at once."""

    def __init__(self, worker: Stoppable) -> None:
        self.worker = worker
        self.count = 0
        self.prev: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in (signal.SIGINT, signal.SIGTERM):
            self.prev[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            log.info("%s received: finishing the task in hand, then exiting (send again to force)", name)
            self.worker.request_stop()
        else:
            log.warning("%s received again: exiting now", name)
            for f in (sys.stdout, sys.stderr):
                try:
                    f.flush()
                except (OSError, ValueError):
                    pass
            os._exit(128 + signum)

    def uninstall(self) -> None:
        for s, h in self.prev.items():
            signal.signal(s, h)
        self.prev = {}
