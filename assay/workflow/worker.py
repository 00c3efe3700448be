"""The Python worker: connection, the combined long-poll loop, heartbeats, graceful stop, slots.

Mirrors assay/lua/workflow/worker.lua on the wire: `POST /workers/register` (plus `build_id`), one
`POST /poll` long-poll at a time claiming up to as many tasks as there are free slots (`max_tasks`, capped
by ASSAY_WORKER_MAX_TASKS), `POST /workers/heartbeat` on a timer (it also extends the leases the worker
holds), commands to `/workflow-tasks/{id}/commands` and activity results to `/tasks/{id}/...` (several
in one `POST /tasks/results` under load) with the opt-in eager fields (the engine hands back the
activity just scheduled and the workflow's next task, run by the same slot), reconnect with backoff, and
on SIGTERM/SIGINT: finish the tasks in hand, deregister, return.
"""

from __future__ import annotations

import http.client
import logging
import queue as _queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from assay.protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    HISTORY_LAST_SEQ,
    HISTORY_PAGE_MAX,
    POLL_IS_HEARTBEAT,
    REJECTED_COMMAND,
    RETRY_AFTER,
    STICKY,
    CommandType,
    TaskKind,
)
from assay.workflow import registry, replay
from assay.workflow.errors import WorkerError
from assay.workflow.process import StopSignals, default_build_id, worker_settings
from assay.workflow.results import ResultItem, ResultReporter
from assay.workflow.sticky import Replayer, StickyCache
from assay.workflow.transport import Transport

log = logging.getLogger("assay.workflow")


def _pct(s: Any) -> str:
    return urllib.parse.quote(str(s), safe="")


Task = tuple[str, dict[str, Any]]
#: events asked per page of GET /workflows/{id}/events (the engine's cap)
EVENTS_PAGE = HISTORY_PAGE_MAX
#: the longest retry_after a worker honours (a larger value from a confused engine is cut to this)
MAX_RETRY_AFTER = 300.0
WF_KIND, ACT_KIND = TaskKind.workflow_task.value, TaskKind.activity_task.value


class Worker:
    """One poller thread claims tasks for the free slots (a batch poll asks for at most as many tasks as
    there are free slots, capped by max_tasks); each slot thread runs a task, then what the engine hands
    back for it (eager dispatch), then takes the next one."""

    def __init__(self, transport: Transport, cfg: dict[str, Any]) -> None:
        self.t = transport
        self.cfg = cfg
        self.stop = threading.Event()
        self.worker_id = ""
        self.legacy = False
        self.rejected: dict[str, tuple[int, str]] = {}
        self._rej_lock = threading.Lock()
        self.tasks_done = 0
        self.held_tasks = 0  # claimed and not finished (with what the engine handed back for them)
        self.poll_is_heartbeat = False  # the engine counts polls as heartbeats (register's answer)
        n = int(cfg.get("concurrency", 1))
        self.slots_free = threading.BoundedSemaphore(n)
        self.ready: _queue.SimpleQueue[Task | None] = _queue.SimpleQueue()
        self.reporter = ResultReporter(self.deliver, lambda: self.worker_id)
        cap = int(cfg.get("sticky_cache", 0))
        self.replayer = Replayer(StickyCache(cap) if cap > 0 else None, self.fetch_events)
        self._count_lock = threading.Lock()

    def wait_retry(self, secs: float) -> None:
        """Wait before polling again (an empty poll's retry_after); returns at once on stop."""
        self.stop.wait(secs)

    def eager(self) -> bool:
        """Ask for eager dispatch (an engine without it ignores the opt-in fields): not on a legacy engine,
        not while stopping."""
        return not self.legacy and not self.stop.is_set()

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
    def _eager_activities(self, cmds: list[dict[str, Any]]) -> int:
        """1 when the batch schedules an activity this worker serves on its queue: this slot is free once
        the commands are in, so it can run it. Never more (the other slots are not ours to promise)."""
        for c in cmds:
            if c.get("type") == CommandType.ScheduleActivity and c.get("name") in registry.ACTIVITIES:
                if c.get("task_queue") in (None, self.cfg["queue"]):
                    return 1
        return 0

    def run_workflow_task(self, task: dict[str, Any]) -> list[Task]:
        """Replay and send the commands; returns the tasks the engine handed back (eager dispatch)."""
        wid = str(task.get("workflow_id"))
        what = f"workflow {wid}"
        last = task.get(HISTORY_LAST_SEQ)
        n_events = last if isinstance(last, int) else len(task.get("history") or [])
        with self._rej_lock:
            rej = self.rejected.pop(wid, None)
        task_error = None
        run = None
        res = replay.ReplayResult([], "")
        if rej is not None and rej[0] == n_events:
            cmds: list[dict[str, Any]] = [
                {
                    "type": CommandType.FailWorkflow,
                    "error": "the engine rejected the workflow's commands: " + rej[1],
                }
            ]
            summary = f"{CommandType.FailWorkflow.value} (commands rejected)"
            self.replayer.drop(wid)  # the workflow ends here
        else:
            got, run = self.replayer.run(registry.WORKFLOWS.get(str(task.get("workflow_type"))), task)
            if got is None:
                log.warning("%s: could not fetch its history; the task is retried when its lease ends", what)
                return []
            res = got
            cmds, summary, task_error = res.commands, res.summary, res.task_error
        if task_error is not None:
            self.replayer.keep(run, res, False)
            self.fail_workflow_task(wid, what, str(task.get("workflow_type")), task_error)
            return []
        body: dict[str, Any] = {"worker_id": self.worker_id, "commands": cmds}
        if self.eager():
            n_act = self._eager_activities(cmds)
            if n_act:
                body["eager_activities"] = n_act
            body["eager_workflow_task"] = True
        try:
            out = self.deliver(what, f"/workflow-tasks/{_pct(wid)}/commands", body)
        except BaseException:
            self.replayer.keep(run, res, False)
            raise
        self.replayer.keep(run, res, out is not None and out[0] in (200, 201, 204))
        if out is None:
            return []
        status, value, raw = out
        if status in (200, 201, 204):
            log.debug("%s (%s): %d command(s), %s", what, task.get("workflow_type"), len(cmds), summary)
            more: list[Task] = []
            if isinstance(value, dict):
                more.extend((ACT_KIND, a) for a in value.get("activity_tasks") or [] if isinstance(a, dict))
                if isinstance(value.get(WF_KIND), dict):
                    more.append((WF_KIND, value[WF_KIND]))
            return more
        if status == 409:
            log.info("%s: lease lost (another worker took the task over); commands discarded", what)
        else:
            msg = str(value.get("error") if isinstance(value, dict) else raw[:500].decode("utf-8", "replace"))
            log.error("%s: engine rejected the commands (HTTP %d): %s", what, status, msg)
            if status == 400:
                with self._rej_lock:
                    self.rejected[wid] = (n_events, msg)
        return []

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

    def fetch_events(self, wid: str, after: int, upto: int | None) -> list[dict[str, Any]] | None:
        """The workflow's events with seq > after (and <= upto), in pages; None when the engine would not
        give them."""
        out: list[dict[str, Any]] = []
        while upto is None or after < upto:
            path = f"/workflows/{_pct(wid)}/events?after={after}&limit={EVENTS_PAGE}"
            try:
                status, value, raw = self.t.call("GET", path, timeout=30)
            except (OSError, http.client.HTTPException) as e:
                log.warning("workflow %s: fetching its history failed: %s", wid, e)
                return None
            page = value.get("events") if isinstance(value, dict) else value
            if status != 200 or not isinstance(page, list):
                log.warning("workflow %s: fetching its history answered HTTP %d: %s", wid, status, raw[:200])
                return None
            page = [e for e in page if isinstance(e, dict) and int(e.get("seq") or 0) > after]
            if not page:  # the end (or an engine that ignores `after`: nothing new)
                break
            out.extend(page)
            after = max(int(e.get("seq") or 0) for e in page)
        return [e for e in out if upto is None or int(e.get("seq") or 0) <= upto]

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

    def run_activity_task(self, task: dict[str, Any]) -> list[Task]:
        """Run one attempt and report it (with other slots' results under load); returns the workflow
        task the engine handed back for it (eager dispatch)."""
        name = str(task.get("name"))
        what = f"activity {name} #{task.get('id')} ({task.get('workflow_id')})"
        actx = registry.ActivityContext(task, self._heartbeat_activity(task.get("id")))
        out = registry.run_activity(registry.ACTIVITIES.get(name), actx, task.get("input"))
        item = ResultItem(
            task.get("id"),
            str(task.get("workflow_id")),
            what,
            out.ok,
            out.result,
            out.error,
            out.non_retryable,
        )
        self.reporter.report(item, eager=self.eager())
        verb = "complete" if out.ok else "fail"
        if item.status in (200, 201, 204):
            log.debug("%s: %s", what, "completed" if out.ok else "failed")
        elif item.status in (404, 409):
            log.info(
                "%s: no longer held by this worker (cancelled, timed out or reassigned); result discarded",
                what,
            )
        elif item.status is not None:
            log.error("%s: engine rejected the %s (HTTP %d): %s", what, verb, item.status, item.message)
        return [(WF_KIND, wt) for wt in item.workflow_tasks]

    # -- polling ------------------------------------------------------------------------------------
    def poll_combined(self, state: dict[str, Any], max_tasks: int) -> list[Task]:
        cfg = self.cfg
        t0 = time.monotonic()
        body = {"activities": bool(registry.ACTIVITIES), "max_tasks": max_tasks, "queue": cfg["queue"],
                "wait_secs": float(cfg["wait_secs"]), "worker_id": self.worker_id,
                "workflows": bool(registry.WORKFLOWS)}  # fmt: skip
        if cfg["wait_secs"] > 0:
            body[RETRY_AFTER] = True  # opt-in: a poll the engine cannot hold says when to come back
        status, value, raw = self.t.call("POST", "/poll", body, timeout=cfg["wait_secs"] + 15, abortable=True)
        if status == 0:
            return []
        if status in (404, 405):
            self.legacy = True
            log.info("engine has no combined /poll endpoint; using the separate poll endpoints")
            return []
        if status != 200:
            err = value.get("error") if isinstance(value, dict) else raw[:300].decode("utf-8", "replace")
            raise RuntimeError(f"poll answered HTTP {status}: {err}")
        got: list[Task] = []
        if isinstance(value, dict) and isinstance(value.get("tasks"), list):  # a batch (max_tasks)
            got = [
                (str(x["kind"]), x["task"])
                for x in value["tasks"]
                if isinstance(x, dict) and x.get("kind") is not None and isinstance(x.get("task"), dict)
            ]
        elif (
            isinstance(value, dict) and value.get("kind") is not None and isinstance(value.get("task"), dict)
        ):
            got = [(str(value["kind"]), value["task"])]  # an engine without batch polls
        if got:
            state["quick_empty"] = 0
            return got
        ra = value.get(RETRY_AFTER) if isinstance(value, dict) else None
        if isinstance(ra, int | float) and not isinstance(ra, bool) and ra > 0:
            # the engine could not hold the poll: come back when it says (a stop cuts the wait short)
            state["quick_empty"] = 0
            log.debug("the engine could not hold the poll: polling again in %.1fs (retry_after)", float(ra))
            self.wait_retry(min(float(ra), MAX_RETRY_AFTER))
            return []
        # an empty answer long before wait_secs: the engine is saving threads; do not spin
        if time.monotonic() - t0 < min(0.05, cfg["wait_secs"]):
            state["quick_empty"] += 1
            if state["quick_empty"] > 1:
                self.stop.wait(0.25)
        else:
            state["quick_empty"] = 0
        return []

    def poll_legacy(self) -> list[Task]:
        who = {"queue": self.cfg["queue"], "worker_id": self.worker_id}
        if registry.WORKFLOWS:
            status, value, _ = self.t.call("POST", "/workflow-tasks/poll", who, timeout=40, abortable=True)
            if status == 200 and isinstance(value, dict) and value.get("workflow_id"):
                return [(WF_KIND, value)]
        if registry.ACTIVITIES:
            status, value, _ = self.t.call("POST", "/tasks/poll", who, timeout=40, abortable=True)
            if status == 200 and isinstance(value, dict) and value.get("id"):
                return [(ACT_KIND, value)]
        self.stop.wait(0.5)
        return []

    def _take_free_slots(self) -> int:
        """Wait for a free slot (or stop), then take every other free one, up to max_tasks: how many
        tasks the next poll may claim. 0 when stopping."""
        while not self.slots_free.acquire(timeout=0.25):
            if self.stop.is_set():
                return 0
        if self.stop.is_set():
            self.slots_free.release()
            return 0
        n = 1
        limit = 1 if self.legacy else self.cfg["max_tasks"]
        while n < limit and self.slots_free.acquire(blocking=False):
            n += 1
        return n

    def poll_loop(self) -> None:
        """The poller: claim tasks for free slots and hand them to the slot threads."""
        backoff, last_err = 0.0, None
        state = {"quick_empty": 0}
        while not self.stop.is_set():
            n = self._take_free_slots()
            if n == 0:
                break
            got: list[Task] = []
            try:
                got = self.poll_legacy() if self.legacy else self.poll_combined(state, n)
            except Exception as e:  # noqa: BLE001 - engine down, cut connection, HTTP error
                if self.stop.is_set():
                    self._free(n)
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
                self._free(n)
                self.stop.wait(backoff)
                continue
            if backoff > 0:
                log.info("engine reachable again")
                backoff, last_err = 0.0, None
            for i, t in enumerate(got):
                if i >= n:  # an engine that answered more than asked: still ours, run when a slot frees
                    self.slots_free.acquire()
                with self._count_lock:
                    self.held_tasks += 1
                self.ready.put(t)
            self._free(n - min(n, len(got)))

    def _free(self, n: int) -> None:
        for _ in range(n):
            self.slots_free.release()

    def slot_loop(self) -> None:
        """A slot: run what the poller hands over (and what the engine hands back for it) until told to end."""
        while True:
            item = self.ready.get()
            if item is None:
                return
            try:
                self.run_chain(item)
            finally:
                with self._count_lock:
                    self.held_tasks -= 1
                self.slots_free.release()

    def run_chain(self, first: Task) -> None:
        """Run a task, then what the engine handed back for it, in this slot (eager dispatch)."""
        todo = [first]
        while todo:
            kind, task = todo.pop(0)
            more: list[Task] = []
            try:
                if kind == WF_KIND:
                    more = self.run_workflow_task(task)
                elif kind == ACT_KIND:
                    more = self.run_activity_task(task)
                else:
                    log.warning("unknown task kind from the engine: %s", kind)
            except Exception:  # a bug must not kill the slot: the task's lease runs out and it is retried
                log.exception("internal error running a %s", kind)
            with self._count_lock:
                self.tasks_done += 1
            todo = more + todo

    # -- registration and heartbeat -------------------------------------------------------------------
    def register(self) -> bool:
        body = self.cfg["registration"]
        backoff = self.cfg["min_backoff"]
        while True:
            try:
                status, value, raw = self.t.call("POST", "/workers/register", body)
                if status in (200, 201) and isinstance(value, dict) and value.get("worker_id"):
                    self.worker_id = str(value["worker_id"])
                    self.poll_is_heartbeat = value.get(POLL_IS_HEARTBEAT) is True
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
        last = time.monotonic()
        while not done.wait(self.cfg["heartbeat_interval"]):
            # idle on an engine that counts polls as heartbeats: its polls keep it alive; beat rarely
            # (the beat re-registers an id the engine forgot), and at once again when work is held
            if (
                self.poll_is_heartbeat
                and self.held_tasks == 0
                and time.monotonic() - last < self.cfg["idle_heartbeat_interval"]
            ):
                continue
            last = time.monotonic()
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
    max_tasks: int | None = None,
) -> bool:
    if not registry.WORKFLOWS and not registry.ACTIVITIES:
        raise WorkerError(
            "workflow.listen: register a workflow (@workflow.define) or an activity (@workflow.activity) first"
        )
    defaults = worker_settings("workflow.listen")
    n = concurrency if concurrency is not None else defaults.concurrency
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise WorkerError("workflow.listen: concurrency must be an integer of at least 1")
    mt = max_tasks if max_tasks is not None else defaults.max_tasks
    if isinstance(mt, bool) or not isinstance(mt, int) or not 1 <= mt <= 100:
        raise WorkerError("workflow.listen: max_tasks must be an integer from 1 to 100")
    wait = poll_wait_secs if poll_wait_secs is not None else defaults.poll_wait_secs
    hb = heartbeat_interval_secs or defaults.heartbeat_secs
    cfg: dict[str, Any] = {
        "queue": queue,
        "concurrency": n,
        "max_tasks": mt,
        "sticky_cache": max(0, int(defaults.sticky_cache)),
        "wait_secs": max(0.0, min(60.0, wait)),
        "heartbeat_interval": float(hb),
        "idle_heartbeat_interval": float(max(hb, defaults.idle_heartbeat_secs)),
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
    if cfg["sticky_cache"] > 0:
        reg[STICKY] = True  # keeps workflows' replay state: the engine may send only new events
    if bid:
        reg["build_id"] = bid
    cfg["registration"] = reg
    transport.aborting.clear()
    w = Worker(transport, cfg)
    signals = StopSignals(w)
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
        slots = [
            threading.Thread(target=w.slot_loop, name=f"assay-slot-{i + 1}", daemon=True) for i in range(n)
        ]
        for s in slots:
            s.start()
        poller = threading.Thread(target=w.poll_loop, name="assay-poller", daemon=True)
        poller.start()
        while poller.is_alive():
            poller.join(0.25)
        for _ in slots:  # the tasks in hand are finished first: the slots end after them
            w.ready.put(None)
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
        w.replayer.close()  # the suspended runs' threads end
        log.info("worker %s stopped", w.worker_id)
        return True
    finally:
        signals.uninstall()
        if stop is not None:
            stop.set()
