"""The Python worker: connection, the combined long-poll loop, heartbeats, graceful stop, slots.

Mirrors assay/lua/workflow/worker.lua on the wire: `POST /workers/register` (plus `build_id`), one
`POST /poll` long-poll per slot, `POST /workers/heartbeat` on a timer (it also extends the leases the
worker holds), commands to `/workflow-tasks/{id}/commands`, activity results to `/tasks/{id}/...`,
reconnect with backoff, and on SIGTERM/SIGINT: finish the tasks in hand, deregister, return.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from assay.protocol import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, REJECTED_COMMAND, CommandType, TaskKind
from assay.workflow import registry, replay
from assay.workflow.errors import WorkerError

log = logging.getLogger("assay.workflow")

API = "/api/v1"


def _pct(s: Any) -> str:
    return urllib.parse.quote(str(s), safe="")


class Transport:
    """A keep-alive HTTP connection per thread to one engine; in-flight polls can be aborted."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0) -> None:
        p = urllib.parse.urlsplit(url)
        if p.scheme not in ("http", "https") or not p.hostname:
            raise ValueError(f"workflow.connect: not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.scheme, self.host = p.scheme, p.hostname
        self.port = p.port or (443 if p.scheme == "https" else 80)
        self.prefix = p.path.rstrip("/") + API
        self.api_key = api_key or None
        self.timeout = timeout
        self._local = threading.local()
        self._inflight: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.aborting = threading.Event()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            c = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        abortable: bool = False,
    ) -> tuple[int, Any, bytes]:
        """One request: (status, parsed JSON or None, raw). Raises OSError/HTTPException when no answer
        came; returns status 0 when an abortable request was cut short by `abort()`."""
        headers = {"Accept": "application/json", "User-Agent": "assay-python-worker"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            headers["Content-Length"] = "0"
        for retry in (True, False):
            c = self._conn()
            try:
                if c.sock is None:
                    c.connect()
                c.sock.settimeout(timeout or self.timeout)
                sock = c.sock
                if abortable:
                    with self._lock:
                        if self.aborting.is_set():
                            return 0, None, b""
                        self._inflight.add(sock)
                try:
                    c.request(method, self.prefix + path, body=data, headers=headers)
                    resp = c.getresponse()
                    raw = resp.read()
                finally:
                    if abortable:
                        with self._lock:
                            self._inflight.discard(sock)
            except (OSError, http.client.HTTPException):
                self._drop()
                if abortable and self.aborting.is_set():
                    return 0, None, b""
                # a keep-alive connection the server closed meanwhile: one fresh try (not for a poll,
                # whose request may have claimed a task)
                if retry and not abortable:
                    continue
                raise
            if resp.will_close:
                self._drop()
            value = None
            if raw:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = None
            return resp.status, value, raw
        raise AssertionError("unreachable")  # pragma: no cover

    def abort(self) -> None:
        """Cut every in-flight abortable request (and refuse new ones) so a stopping worker returns fast."""
        with self._lock:
            self.aborting.set()
            for s in list(self._inflight):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


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


class Worker:
    def __init__(self, transport: Transport, cfg: dict[str, Any]) -> None:
        self.t = transport
        self.cfg = cfg
        self.stop = threading.Event()
        self.worker_id = ""
        self.legacy = False
        self.rejected: dict[str, tuple[int, str]] = {}
        self._rej_lock = threading.Lock()
        self.tasks_done = 0

    # -- reporting --------------------------------------------------------------------------------
    def deliver(self, what: str, path: str, body: Any) -> tuple[int, Any, bytes] | None:
        """POST a result, retried (bounded) while the engine is unreachable."""
        delay, deadline = 0.25, time.monotonic() + 60
        while True:
            try:
                return self.t.call("POST", path, body, timeout=30)
            except (OSError, http.client.HTTPException) as e:
                if time.monotonic() > deadline:
                    log.error("%s: giving up, engine unreachable: %s", what, e)
                    return None
                log.warning("%s: engine unreachable (%s); retrying in %.1fs", what, e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- workflow tasks -----------------------------------------------------------------------------
    def run_workflow_task(self, task: dict[str, Any]) -> None:
        wid = str(task.get("workflow_id"))
        what = f"workflow {wid}"
        n_events = len(task.get("history") or [])
        with self._rej_lock:
            rej = self.rejected.pop(wid, None)
        task_error = None
        if rej is not None and rej[0] == n_events:
            cmds: list[dict[str, Any]] = [
                {
                    "type": CommandType.FailWorkflow,
                    "error": "the engine rejected the workflow's commands: " + rej[1],
                }
            ]
            summary = f"{CommandType.FailWorkflow.value} (commands rejected)"
        else:
            res = replay.run(registry.WORKFLOWS.get(str(task.get("workflow_type"))), task)
            cmds, summary, task_error = res.commands, res.summary, res.task_error
        if task_error is not None:
            self.fail_workflow_task(wid, what, str(task.get("workflow_type")), task_error)
            return
        body = {"worker_id": self.worker_id, "commands": cmds}
        out = self.deliver(what, f"/workflow-tasks/{_pct(wid)}/commands", body)
        if out is None:
            return
        status, value, raw = out
        if status in (200, 201, 204):
            log.debug("%s (%s): %d command(s), %s", what, task.get("workflow_type"), len(cmds), summary)
        elif status == 409:
            log.info("%s: lease lost (another worker took the task over); commands discarded", what)
        else:
            msg = str(value.get("error") if isinstance(value, dict) else raw[:500].decode("utf-8", "replace"))
            log.error("%s: engine rejected the commands (HTTP %d): %s", what, status, msg)
            if status == 400:
                with self._rej_lock:
                    self.rejected[wid] = (n_events, msg)

    def fail_workflow_task(self, wid: str, what: str, wf_type: str, error: str) -> None:
        """The code cannot run this task (nondeterminism): the task fails, the workflow is untouched. The
        engine hands it out again after a growing backoff (and flags the workflow as stuck when it keeps
        failing); a worker with the right code picks it up and it runs on."""
        log.error("%s (%s): workflow task failed: %s", what, wf_type, error)
        out = self.deliver(
            what, f"/workflow-tasks/{_pct(wid)}/fail", {"worker_id": self.worker_id, "error": error}
        )
        if out is None or out[0] not in (404, 405):
            if out is not None and out[0] not in (200, 201, 204, 409):
                log.error("%s: engine answered HTTP %d to the failed task: %s", what, out[0], out[2][:300])
            return
        # An engine without POST /workflow-tasks/{id}/fail: a batch it rejects (400) gives the task back the
        # same way (release, backoff), and nothing is recorded.
        self.deliver(
            what,
            f"/workflow-tasks/{_pct(wid)}/commands",
            {"worker_id": self.worker_id, "commands": [{"type": REJECTED_COMMAND, "error": error}]},
        )

    # -- activity tasks -----------------------------------------------------------------------------
    def _heartbeat_activity(self, act_id: Any) -> Callable[[Any], bool]:
        def beat(details: Any) -> bool:
            try:
                status, value, _ = self.t.call(
                    "POST", f"/tasks/{_pct(act_id)}/heartbeat",
                    {"details": details, "worker_id": self.worker_id}, timeout=10,
                )  # fmt: skip
            except (OSError, http.client.HTTPException) as e:
                log.debug("activity heartbeat failed: %s", e)
                return False
            if status in (404, 409):
                return True
            return isinstance(value, dict) and value.get("cancel_requested") is True

        return beat

    def run_activity_task(self, task: dict[str, Any]) -> None:
        name = str(task.get("name"))
        what = f"activity {name} #{task.get('id')} ({task.get('workflow_id')})"
        actx = registry.ActivityContext(task, self._heartbeat_activity(task.get("id")))
        out = registry.run_activity(registry.ACTIVITIES.get(name), actx, task.get("input"))
        path = f"/tasks/{_pct(task.get('id'))}/"
        if out.ok:
            verb, body = "complete", {"result": out.result, "worker_id": self.worker_id}
        else:
            verb = "fail"
            body = {"error": out.error, "worker_id": self.worker_id}
            if out.non_retryable:
                body["non_retryable"] = True
        res = self.deliver(what, path + verb, body)
        if res is None:
            return
        status, value, raw = res
        if status in (200, 201, 204):
            log.debug("%s: %s", what, "completed" if out.ok else "failed")
        elif status in (404, 409):
            log.info(
                "%s: no longer held by this worker (cancelled, timed out or reassigned); result discarded",
                what,
            )
        else:
            msg = value.get("error") if isinstance(value, dict) else raw[:500]
            log.error("%s: engine rejected the %s (HTTP %d): %s", what, verb, status, msg)

    # -- polling ------------------------------------------------------------------------------------
    def poll_combined(self, state: dict[str, Any]) -> tuple[str | None, Any]:
        cfg = self.cfg
        t0 = time.monotonic()
        body = {"activities": bool(registry.ACTIVITIES), "queue": cfg["queue"], "wait_secs": float(cfg["wait_secs"]),
                "worker_id": self.worker_id, "workflows": bool(registry.WORKFLOWS)}  # fmt: skip
        status, value, raw = self.t.call("POST", "/poll", body, timeout=cfg["wait_secs"] + 15, abortable=True)
        if status == 0:
            return None, None
        if status in (404, 405):
            self.legacy = True
            log.info("engine has no combined /poll endpoint; using the separate poll endpoints")
            return None, None
        if status != 200:
            err = value.get("error") if isinstance(value, dict) else raw[:300].decode("utf-8", "replace")
            raise RuntimeError(f"poll answered HTTP {status}: {err}")
        if isinstance(value, dict) and value.get("kind") is not None and isinstance(value.get("task"), dict):
            state["quick_empty"] = 0
            return value["kind"], value["task"]
        # an empty answer long before wait_secs: the engine is saving threads; do not spin
        if time.monotonic() - t0 < min(0.05, cfg["wait_secs"]):
            state["quick_empty"] += 1
            if state["quick_empty"] > 1:
                self.stop.wait(0.25)
        else:
            state["quick_empty"] = 0
        return None, None

    def poll_legacy(self) -> tuple[str | None, Any]:
        who = {"queue": self.cfg["queue"], "worker_id": self.worker_id}
        if registry.WORKFLOWS:
            status, value, _ = self.t.call("POST", "/workflow-tasks/poll", who, timeout=40, abortable=True)
            if status == 200 and isinstance(value, dict) and value.get("workflow_id"):
                return TaskKind.workflow_task, value
        if registry.ACTIVITIES:
            status, value, _ = self.t.call("POST", "/tasks/poll", who, timeout=40, abortable=True)
            if status == 200 and isinstance(value, dict) and value.get("id"):
                return TaskKind.activity_task, value
        self.stop.wait(0.5)
        return None, None

    def loop(self) -> None:
        backoff, last_err = 0.0, None
        state = {"quick_empty": 0}
        while not self.stop.is_set():
            try:
                kind, task = self.poll_legacy() if self.legacy else self.poll_combined(state)
            except Exception as e:  # noqa: BLE001 - engine down, cut connection, HTTP error
                if self.stop.is_set():
                    break
                backoff = (
                    self.cfg["min_backoff"] if backoff == 0 else min(backoff * 2, self.cfg["max_backoff"])
                )
                msg = str(e)
                what = (
                    msg
                    if msg.startswith("poll answered HTTP")
                    else f"engine unreachable ({msg or type(e).__name__})"
                )
                (log.warning if what != last_err else log.debug)("%s; retrying in %.2fs", what, backoff)
                last_err = what
                self.stop.wait(backoff)
                continue
            if backoff > 0:
                log.info("engine reachable again")
                backoff, last_err = 0.0, None
            try:
                if kind == TaskKind.workflow_task:
                    self.run_workflow_task(task)
                elif kind == TaskKind.activity_task:
                    self.run_activity_task(task)
                elif kind is not None:
                    log.warning("unknown task kind from the engine: %s", kind)
            except Exception:  # a bug must not kill the slot: the task's lease runs out and it is retried
                log.exception("internal error running a %s", kind)
            if kind is not None:
                self.tasks_done += 1

    # -- registration and heartbeat -------------------------------------------------------------------
    def register(self) -> bool:
        body = self.cfg["registration"]
        backoff = self.cfg["min_backoff"]
        while True:
            try:
                status, value, raw = self.t.call("POST", "/workers/register", body)
                if status in (200, 201) and isinstance(value, dict) and value.get("worker_id"):
                    self.worker_id = str(value["worker_id"])
                    return True
                if 400 <= status < 500:
                    err = (
                        value.get("error")
                        if isinstance(value, dict)
                        else raw[:300].decode("utf-8", "replace")
                    )
                    raise WorkerError(f"workflow.listen: worker registration refused (HTTP {status}): {err}")
                why = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as e:
                why = str(e) or type(e).__name__
            log.warning("worker registration failed (%s); retrying in %.2fs", why, backoff)
            if self.stop.wait(backoff):
                return False
            backoff = min(backoff * 2, self.cfg["max_backoff"])

    def heartbeat_loop(self, done: threading.Event) -> None:
        hb = Transport(
            self.t.url, self.t.api_key, timeout=max(2.0, min(10.0, self.cfg["heartbeat_interval"] * 2))
        )
        body = dict(self.cfg["registration"], worker_id=self.worker_id)
        failing = False
        while not done.wait(self.cfg["heartbeat_interval"]):
            try:
                status, _, raw = hb.call("POST", "/workers/heartbeat", body)
                if status >= 400 and not failing:
                    log.warning("worker heartbeat answered HTTP %s: %s", status, raw[:200])
                failing = status >= 400
            except (OSError, http.client.HTTPException) as e:
                if not failing:
                    log.debug("worker heartbeat failed: %s", e)
                failing = True

    def request_stop(self) -> None:
        self.stop.set()
        self.t.abort()


class _StopSignals:
    """First SIGINT/SIGTERM: stop gracefully (finish the tasks in hand). Second: exit at once."""

    def __init__(self, worker: Worker) -> None:
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


def listen_with(
    transport: Transport,
    *,
    queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    identity: str | None = None,
    poll_wait_secs: float | None = None,
    heartbeat_interval_secs: float | None = None,
    max_backoff_secs: float | None = None,
    min_backoff_secs: float = 0.5,
    build_id: str | None = None,
    stop: threading.Event | None = None,
) -> bool:
    if not registry.WORKFLOWS and not registry.ACTIVITIES:
        raise WorkerError(
            "workflow.listen: register a workflow (@workflow.define) or an activity (@workflow.activity) first"
        )
    defaults = worker_settings("workflow.listen")
    n = concurrency if concurrency is not None else defaults.concurrency
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise WorkerError("workflow.listen: concurrency must be an integer of at least 1")
    wait = poll_wait_secs if poll_wait_secs is not None else defaults.poll_wait_secs
    hb = heartbeat_interval_secs or defaults.heartbeat_secs
    cfg: dict[str, Any] = {
        "queue": queue,
        "wait_secs": max(0.0, min(60.0, wait)),
        "heartbeat_interval": float(hb),
        "min_backoff": float(min_backoff_secs),
        "max_backoff": float(max_backoff_secs or defaults.max_backoff_secs),
    }
    bid = build_id if build_id is not None else default_build_id()
    reg: dict[str, Any] = {
        "identity": identity or f"assay-py-worker-{socket.gethostname()}",
        "queue": queue,
        "namespace": namespace,
        "workflows": list(registry.WORKFLOWS),
        "activities": list(registry.ACTIVITIES),
        "max_concurrent_workflows": n,
        "max_concurrent_activities": n,
        "heartbeat_interval_secs": float(hb),
    }
    if bid:
        reg["build_id"] = bid
    cfg["registration"] = reg
    transport.aborting.clear()
    w = Worker(transport, cfg)
    signals = _StopSignals(w)
    signals.install()
    watcher = None
    if stop is not None:  # an embedding program's own stop switch

        def watch() -> None:
            stop.wait()
            w.request_stop()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        if not w.register():
            return False
        hb_done = threading.Event()
        hb_thread = threading.Thread(
            target=w.heartbeat_loop, args=(hb_done,), name="assay-heartbeat", daemon=True
        )
        hb_thread.start()
        log.info(
            "worker %s listening on queue '%s' (namespace %s, %d workflow type(s), %d activity type(s)%s%s)",
            w.worker_id, queue, namespace, len(registry.WORKFLOWS), len(registry.ACTIVITIES),
            f", {n} slots" if n > 1 else "", f", build {bid}" if bid else "",
        )  # fmt: skip
        slots = [threading.Thread(target=w.loop, name=f"assay-slot-{i + 1}", daemon=True) for i in range(n)]
        for s in slots:
            s.start()
        for s in slots:
            while s.is_alive():
                s.join(0.25)
        # tell the engine we are gone: it ends our held polls and frees our leases (best effort)
        try:
            Transport(transport.url, transport.api_key, timeout=2).call(
                "POST", f"/workers/{_pct(w.worker_id)}/deregister", {}
            )
        except (OSError, http.client.HTTPException):
            pass
        hb_done.set()
        log.info("worker %s stopped", w.worker_id)
        return True
    finally:
        signals.uninstall()
        if stop is not None:
            stop.set()
