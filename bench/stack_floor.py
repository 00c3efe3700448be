"""The stack's floor: the least an engine on bottle + waitress + SQLite can cost for the shared harness.

A deliberately minimal stand-in for `assay serve` that speaks just enough of the protocol for the shared
harness (../shared/bench/compare.py) and both of its assay worker variants:

- `raw`: the harness's raw-HTTP Python worker (register, the two long-polls /workflow-tasks/poll and
  /tasks/poll, commands, activity complete, heartbeat);
- `lua`: `assay run worker.lua` with require("assay.workflow"), the project's own Lua worker, unchanged. It
  uses the same opt-in protocol features it uses with the real engine: GET /health at connect; register
  with `sticky: true` (answered with `poll_is_heartbeat: true`); the combined long-poll POST /poll with
  `max_tasks` (a batch); commands with `eager_activities` / `eager_workflow_task` (the 200 body carries the
  activity tasks the batch scheduled and the workflow's next task, claimed for the caller); activity
  complete with `eager_workflow_task` (the 200 body carries the workflow task it made ready); sticky
  histories (`history_after` / `history_last_seq`: a worker that ran the workflow's last task gets only the
  new events) and GET /workflows/{id}/events for a worker that must fetch the whole history; heartbeats;
  POST /workers/{id}/deregister at exit (ends its held polls).

plus start, describe and the SSE completion frames the harness watches. Every other command
(`stack_floor.py run worker.lua`, ...) is assay's own CLI, so the harness's `assay.py run` runs the real
Lua worker against the floor.

What it does, the least any durable engine must:
- one SQLite transaction (WAL, synchronous=FULL) per write request (start, commands, complete), holding
  the workflow row, its history events and its task rows, committed before the answer;
- claims in memory: a long-poll held on the queue is handed a ready task directly (one wake-up per task),
  a batch poll takes up to `max_tasks` ready tasks, an eager claim keeps the task for the caller; the
  history a workflow task carries is sliced from memory;
- SSE frames written by the stream's own thread.

Why it is a lower bound (what it leaves out): no validation, auth, namespaces, metrics, fencing (leases,
claim writes, heartbeat-driven expiry), timers, retries, signals, cancellation, search attributes,
history paging, idempotent starts; claims and worker registrations are never written; the history is
never read back from the store. The workers are unchanged, so they make the same requests as against
`assay serve` (a 1-activity workflow: raw start, poll, commands, poll, complete, poll, commands; Lua start,
poll, commands (eager activity), complete (eager workflow task), commands): the same 4 durable commits.
A real engine must also persist who holds a task (or recover it by a timeout) and must write a batch
poll's claims, which the floor keeps in memory. Not strictly minimal, on purpose (each costs a row in a
transaction that pays its fsync anyway): a task row per workflow task (an engine may keep that state on
the workflow row instead), the input stored twice (workflow row and WorkflowStarted event), the
workflow_started SSE frame (the harness's probe needs some frame for a started workflow). Its only
purpose: on this machine and this stack, how fast can the harness's workers go at best?

Run the harness against it by pointing ASSAY_CHECKOUT at a folder whose `assay.py` runs this file (the
harness runs `assay.py serve ...` for the engine and `assay.py run worker.lua` for the Lua worker):

    mkdir -p /tmp/floorco && echo "import runpy; runpy.run_path('$PWD/bench/stack_floor.py', run_name='__main__')" \\
        > /tmp/floorco/assay.py
    ASSAY_CHECKOUT=/tmp/floorco ASSAY_PYTHON=$PWD/.venv/bin/python BENCH_OUT=/tmp/floor-run \\
        bash ../shared/bench/run.sh --variants raw,lua        # add --no-dbos to skip DBOS while developing

(BENCH_OUT keeps the results: ASSAY.md, and assay-results.json with the engine and worker CPU per workflow,
cpu_ms_per_wf), or on its own: `.venv/bin/python bench/stack_floor.py serve --port 8085 --backend
sqlite:////tmp/f.db` (`--server waitress`: plain waitress.serve instead of assay's HTTP loop).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import queue
import sqlite3
import sys
import threading
import time
from typing import Any

import bottle
import waitress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from assay.protocol import (  # noqa: E402
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
    HISTORY_AFTER,
    HISTORY_LAST_SEQ,
    POLL_IS_HEARTBEAT,
    STICKY,
    ActivityStatus,
    CommandType,
    EventType,
    SseEvent,
    TaskKind,
    WorkflowStatus,
)

API = "/api/v1"
WF, ACT = TaskKind.workflow_task.value, TaskKind.activity_task.value
MAX_TASKS = 100
MAX_WAIT = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (id TEXT PRIMARY KEY, type TEXT, queue TEXT, input TEXT, status TEXT,
                                      result TEXT);
CREATE TABLE IF NOT EXISTS events (wf_id TEXT, seq INTEGER, type TEXT, data TEXT, PRIMARY KEY (wf_id, seq));
CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, kind TEXT, wf_id TEXT, queue TEXT, input TEXT,
                                  done INTEGER DEFAULT 0);
"""
# a workflow's workflow task: none pending, ready (queued or being handed over), or held by a worker
READY, RUNNING = "ready", "running"


class Waiter:
    """A held poll: what it accepts; `got` is set (and `lock` released) when a task is handed to it."""

    __slots__ = ("kinds", "worker", "lock", "got")

    def __init__(self, kinds: tuple[str, ...], worker: str) -> None:
        self.kinds, self.worker = kinds, worker
        self.lock = threading.Lock()
        self.lock.acquire()
        self.got: list[tuple] | None = None


class Floor:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()  # the one writer: history seqs, the commit, the history in memory
        self.mu = threading.Lock()  # dispatch: ready queues, held polls, claims, workflow task states
        self.ready: dict[str, dict[str, collections.deque]] = collections.defaultdict(
            lambda: {WF: collections.deque(), ACT: collections.deque()}
        )
        self.waiters: dict[str, collections.deque[Waiter]] = collections.defaultdict(collections.deque)
        self.wfs: dict[str, dict] = {}
        self.acts: dict[int, dict] = {}
        (row,) = self.db.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()
        self.ids = itertools.count(row + 1)
        self.turn = itertools.count()
        self.workers: dict[str, dict] = {}
        self.gone: set[str] = set()  # deregistered worker ids: their polls are not held
        self.streams: list[queue.SimpleQueue] = []

    # -- writes: one durable transaction each (under the writer lock), then dispatch and the streams
    def _commit(self, stmts: list[tuple[str, tuple]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        for sql, args in stmts:
            self.db.execute(sql, args)
        self.db.execute("COMMIT")

    def _publish(self, event: str, wf_id: str) -> None:
        frame = (
            f"event: {event}\ndata: {json.dumps({'workflow_id': wf_id, 'event_type': event})}\n\n".encode()
        )
        for s in list(self.streams):
            s.put(frame)

    def start(self, b: dict) -> dict:
        wf_id, q = b["workflow_id"], b.get("task_queue") or DEFAULT_TASK_QUEUE
        inp = b.get("input")
        now = time.time()
        ev = {"seq": 1, "event_type": EventType.WorkflowStarted.value, "payload": inp, "timestamp": now}
        with self.lock:
            tid = next(self.ids)
            self._commit(
                [
                    (
                        "INSERT INTO workflows VALUES (?,?,?,?,?,NULL)",
                        (wf_id, b.get("workflow_type"), q, json.dumps(inp), WorkflowStatus.RUNNING.value),
                    ),
                    ("INSERT INTO events VALUES (?,?,?,?)", (wf_id, 1, ev["event_type"], json.dumps(inp))),
                    ("INSERT INTO tasks (id, kind, wf_id, queue) VALUES (?,?,?,?)", (tid, WF, wf_id, q)),
                ]
            )
            self.wfs[wf_id] = {
                "id": wf_id,
                "type": b.get("workflow_type"),
                "queue": q,
                "input": inp,
                "history": [ev],
                "status": WorkflowStatus.RUNNING.value,
                "result": None,
                "created_at": now,
                "task": READY,
                "again": False,
                "sticky": None,  # (worker id, last seq it saw) of a sticky worker holding the replay state
            }
        with self.mu:
            self._dispatch(WF, q, wf_id)
        self._publish(SseEvent.workflow_started, wf_id)
        return {"workflow_id": wf_id, "run_id": wf_id, "status": WorkflowStatus.RUNNING.value}

    def commands(self, wf_id: str, b: dict, eager_acts: int, eager_wf: bool) -> dict:
        """Apply a workflow task's commands -> the tasks claimed eagerly for the caller."""
        wf = self.wfs[wf_id]
        wid = b.get("worker_id")
        now = time.time()
        new_acts: list[dict] = []
        done, result = False, None
        with self.lock:
            seq = len(wf["history"])
            stmts, events = [], []
            for c in b.get("commands") or []:
                t = c.get("type")
                if t == CommandType.ScheduleActivity:
                    tid = next(self.ids)
                    act_q = c.get("task_queue") or wf["queue"]
                    act = {
                        "id": tid,
                        "workflow_id": wf_id,
                        "seq": c.get("seq"),
                        "name": c.get("name"),
                        "task_queue": act_q,
                        "input": c.get("input"),
                        "status": ActivityStatus.RUNNING.value,
                        "attempt": 1,
                        "max_attempts": c.get("max_attempts") or 1,
                        "cancel_requested": False,
                    }
                    payload = {
                        "activity_id": tid,
                        "activity_seq": c.get("seq"),
                        "name": c.get("name"),
                        "task_queue": act_q,
                        "input": c.get("input"),
                    }
                    stmts.append(
                        (
                            "INSERT INTO tasks (id, kind, wf_id, queue, input) VALUES (?,?,?,?,?)",
                            (tid, ACT, wf_id, act_q, json.dumps(c.get("input"))),
                        )
                    )
                    new_acts.append(act)
                    etype = EventType.ActivityScheduled.value
                elif t == CommandType.CompleteWorkflow:
                    payload = result = c.get("result")
                    stmts.append(
                        (
                            "UPDATE workflows SET status=?, result=? WHERE id=?",
                            (WorkflowStatus.COMPLETED.value, json.dumps(result), wf_id),
                        )
                    )
                    etype, done = EventType.WorkflowCompleted.value, True
                else:
                    continue
                seq += 1
                events.append({"seq": seq, "event_type": etype, "payload": payload, "timestamp": now})
                stmts.append(
                    ("INSERT INTO events VALUES (?,?,?,?)", (wf_id, seq, etype, json.dumps(payload)))
                )
            self._commit(stmts)
            wf["history"].extend(events)
            for act in new_acts:
                self.acts[act["id"]] = act
            if done:
                wf["status"], wf["result"] = WorkflowStatus.COMPLETED.value, result
        got_acts: list[int] = []
        got_wf = None
        with self.mu:
            w = self.workers.get(wid) if wid else None
            for act in new_acts:
                if (
                    w is not None
                    and len(got_acts) < eager_acts
                    and act["name"] in w["activities"]
                    and act["task_queue"] == w["queue"]
                ):
                    got_acts.append(act["id"])
                else:
                    self._dispatch(ACT, act["task_queue"], act["id"])
            wf["task"] = None
            if wf["again"] and not done:  # events came while the task ran: the workflow has work again
                wf["again"] = False
                wf["task"] = READY
                if eager_wf and self._serves_wf(w, wf):
                    got_wf = self._claim_wf(wf, wid)
                else:
                    self._dispatch(WF, wf["queue"], wf_id)
        if done:
            self._publish(SseEvent.workflow_completed, wf_id)
        return {
            "activity_tasks": [self.acts[t] for t in got_acts],
            WF: self._wf_record(*got_wf) if got_wf else None,
        }

    def complete(self, tid: int, b: dict, eager_wf: bool) -> dict | None:
        """Complete an activity -> the workflow task it made ready, when claimed eagerly for the caller."""
        act = self.acts.pop(tid)
        wf = self.wfs[act["workflow_id"]]
        payload = {
            "activity_id": tid,
            "activity_seq": act["seq"],
            "name": act["name"],
            "result": b.get("result"),
            "error": None,
        }
        with self.lock:
            seq = len(wf["history"]) + 1
            wtid = next(self.ids)
            self._commit(
                [
                    ("UPDATE tasks SET done=1 WHERE id=?", (tid,)),
                    (
                        "INSERT INTO events VALUES (?,?,?,?)",
                        (wf["id"], seq, EventType.ActivityCompleted.value, json.dumps(payload)),
                    ),
                    (
                        "INSERT INTO tasks (id, kind, wf_id, queue) VALUES (?,?,?,?)",
                        (wtid, WF, wf["id"], wf["queue"]),
                    ),
                ]
            )
            wf["history"].append(
                {
                    "seq": seq,
                    "event_type": EventType.ActivityCompleted.value,
                    "payload": payload,
                    "timestamp": time.time(),
                }
            )
        got = None
        wid = b.get("worker_id")
        with self.mu:
            if wf["task"] == RUNNING:
                wf["again"] = True  # handed out again once the running task's commands are in
            elif wf["task"] is None:
                wf["task"] = READY
                w = self.workers.get(wid) if wid else None
                if eager_wf and self._serves_wf(w, wf):
                    got = self._claim_wf(wf, wid)
                else:
                    self._dispatch(WF, wf["queue"], wf["id"])
            # READY: the queued task carries the new event (its history is cut at the claim)
        return self._wf_record(*got) if got else None

    # -- dispatch (under self.mu)
    @staticmethod
    def _serves_wf(w: dict | None, wf: dict) -> bool:
        return w is not None and wf["type"] in w["workflows"] and wf["queue"] == w["queue"]

    def _claim_wf(self, wf: dict, wid: str) -> tuple:
        """Claim the workflow's task for worker `wid`: which history it carries (sticky: only the events
        after the ones the worker saw when it held the workflow's last task)."""
        wf["task"] = RUNNING
        last = len(wf["history"])
        w = self.workers.get(wid)
        sticky = bool(w and w["sticky"])
        prev = wf["sticky"]
        after = prev[1] if sticky and prev is not None and prev[0] == wid else None
        wf["sticky"] = (wid, last) if sticky else None
        return (wf, after, last, sticky)

    def _claim(self, kind: str, key: Any, wid: str) -> tuple:
        return (ACT, key) if kind == ACT else (WF, self._claim_wf(self.wfs[key], wid))

    def _dispatch(self, kind: str, q: str, key: Any) -> None:
        """A ready task: handed to the oldest held poll of its queue that takes its kind, else queued."""
        ws = self.waiters.get(q)
        if ws:
            for w in ws:
                if kind in w.kinds:
                    ws.remove(w)
                    w.got = [self._claim(kind, key, w.worker)]
                    w.lock.release()
                    return
        self.ready[q][kind].append(key)

    def _take(self, q: str, kinds: tuple[str, ...], wid: str, n: int) -> list[tuple]:
        rd = self.ready.get(q)
        out: list[tuple] = []
        if rd is None:
            return out
        for kind in kinds:
            dq = rd[kind]
            while dq and len(out) < n:
                out.append(self._claim(kind, dq.popleft(), wid))
        return out

    def poll(self, q: str, wid: str, kinds: tuple[str, ...], wait: float, n: int) -> list[tuple[str, dict]]:
        """Claim up to n ready tasks of `kinds`, holding up to `wait` seconds for one -> [(kind, record)]."""
        if len(kinds) == 2 and next(self.turn) % 2:
            kinds = kinds[::-1]  # a combined poll alternates, as the engine's does
        with self.mu:
            got = self._take(q, kinds, wid, n)
            w = None
            if not got and wait > 0 and wid not in self.gone:
                w = Waiter(kinds, wid)
                self.waiters[q].append(w)
        if w is not None:
            w.lock.acquire(timeout=min(wait, MAX_WAIT))
            with self.mu:
                if w.got is None:
                    try:
                        self.waiters[q].remove(w)
                    except ValueError:
                        pass
                got = w.got or []
        return [(k, self.acts[x] if k == ACT else self._wf_record(*x)) for k, x in got]

    def deregister(self, wid: str) -> dict:
        with self.mu:
            self.gone.add(wid)
            self.workers.pop(wid, None)
            for ws in self.waiters.values():
                for w in [w for w in ws if w.worker == wid]:
                    ws.remove(w)
                    w.got = []
                    w.lock.release()
        return {"known": True}

    # -- answers
    @staticmethod
    def _wf_record(wf: dict, after: int | None, last: int, sticky: bool) -> dict:
        out = {
            "workflow_id": wf["id"],
            "workflow_type": wf["type"],
            "namespace": DEFAULT_NAMESPACE,
            "task_queue": wf["queue"],
            "input": wf["input"],
            "run_id": wf["id"],
            "parent_id": None,
            "search_attributes": None,
            "created_at": wf["created_at"],
            "attempt": 1,
            "history": wf["history"][after or 0 : last],
        }
        if sticky:
            out[HISTORY_LAST_SEQ] = last
            if after is not None:
                out[HISTORY_AFTER] = after
        return out


def make_app(floor: Floor) -> bottle.Bottle:
    app = bottle.Bottle()
    app.config["autojson"] = False

    def body() -> dict:
        return json.loads(bottle.request.body.read() or b"{}")

    def js(obj: Any) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps(obj)

    def known(wf_id: str) -> dict:
        wf = floor.wfs.get(wf_id)
        if wf is None:
            body = json.dumps({"error": f"not found: workflow {wf_id}"})
            raise bottle.HTTPResponse(body, status=404, headers={"Content-Type": "application/json"})
        return wf

    @app.get(API + "/health")
    def health():
        return js({"status": "ok"})

    @app.get(API + "/version")
    def version():
        return js({"version": "stack-floor"})

    @app.post(API + "/workers/register")
    def register():
        b = body()
        wid = f"w{next(floor.ids)}"
        floor.workers[wid] = {
            "queue": b.get("queue") or DEFAULT_TASK_QUEUE,
            "workflows": set(b.get("workflows") or ()),
            "activities": set(b.get("activities") or ()),
            "sticky": bool(b.get(STICKY)),
        }
        return js({"worker_id": wid, POLL_IS_HEARTBEAT: True})

    @app.post(API + "/workers/heartbeat")
    def heartbeat():
        body()
        return ""

    @app.post(API + "/workers/<wid>/deregister")
    def deregister(wid):
        body()
        return js(floor.deregister(wid))

    @app.get(API + "/workers")
    def workers():
        return js([{"worker_id": w, "task_queue": r["queue"]} for w, r in list(floor.workers.items())])

    @app.post(API + "/workflows")
    def start():
        bottle.response.status = 201
        return js(floor.start(body()))

    @app.get(API + "/workflows/<wf_id>")
    def describe(wf_id):
        wf = known(wf_id)
        return js({"workflow_id": wf_id, "status": wf["status"], "result": wf["result"]})

    @app.get(API + "/workflows/<wf_id>/events")
    def events(wf_id):
        wf = known(wf_id)
        q = bottle.request.query
        after = int(q.get("after_seq") or q.get("after") or 0)
        limit = int(q.get("limit") or 1000)
        return js([dict(e, workflow_id=wf_id) for e in wf["history"][after : after + limit]])

    @app.post(API + "/workflows/<wf_id>/cancel")
    def cancel(wf_id):
        return js({})

    def poll(b: dict, kinds: tuple[str, ...], one: Any) -> str:
        wait = float(b.get("wait_secs") or 0)
        n = b.get("max_tasks")
        got = floor.poll(b.get("queue") or DEFAULT_TASK_QUEUE, b.get("worker_id"), kinds, wait, n or 1)
        if n is not None:  # opt-in batch
            return js({"tasks": [{"kind": k, "task": t} for k, t in got]})
        return js(one(got))

    @app.post(API + "/workflow-tasks/poll")
    def wf_poll():
        return poll(body(), (WF,), lambda got: got[0][1] if got else None)

    @app.post(API + "/tasks/poll")
    def act_poll():
        return poll(body(), (ACT,), lambda got: got[0][1] if got else {"task": None})

    @app.post(API + "/poll")
    def any_poll():
        b = body()
        kinds = tuple(k for k, on in ((WF, b.get("workflows", True)), (ACT, b.get("activities", True))) if on)
        return poll(
            b,
            kinds,
            lambda got: {"kind": got[0][0], "task": got[0][1]} if got else {"kind": None, "task": None},
        )

    @app.post(API + "/workflow-tasks/<wf_id>/commands")
    def commands(wf_id):
        b = body()
        eager_acts, eager_wf = b.get("eager_activities"), b.get("eager_workflow_task")
        out = floor.commands(wf_id, b, eager_acts or 0, bool(eager_wf))
        if eager_acts is None and eager_wf is None:
            return ""  # upstream clients: the empty 200
        return js(out)

    @app.post(API + "/tasks/<tid:int>/complete")
    def complete(tid):
        b = body()
        eager = bool(b.get("eager_workflow_task"))
        got = floor.complete(tid, b, eager)
        return js({WF: got}) if eager else ""

    @app.get(API + "/events/stream")
    def stream():
        q: queue.SimpleQueue = queue.SimpleQueue()
        floor.streams.append(q)
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")

        def frames():
            yield b": hello\n\n"
            try:
                while True:
                    yield q.get()
            finally:
                floor.streams.remove(q)

        return frames()

    return app


def main() -> None:
    if sys.argv[1:2] != ["serve"]:  # every other command is assay's own CLI (`run worker.lua`, ...)
        from assay.cli import main as assay_main

        assay_main()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=8085)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--backend", default="sqlite:///stack-floor.db")
    s.add_argument("--threads", type=int, default=16)
    s.add_argument(
        "--server",
        choices=("waitress", "assay"),
        default=os.environ.get("FLOOR_SERVER", "assay"),
        help="waitress: plain waitress.serve; assay: assay's HTTP loop, every request but the "
        "long-polls and the stream served on the loop thread (env FLOOR_SERVER)",
    )
    a = ap.parse_args()
    path = a.backend.split("sqlite:///", 1)[-1]
    app = make_app(Floor(path))
    if a.server == "waitress":
        waitress.serve(
            app, host=a.host, port=a.port, threads=a.threads, _quiet=True, channel_request_lookahead=0
        )
        return
    from assay.server import create_http_server

    def quick(method: str, path: str, headers: dict) -> bool:
        return not (path.endswith("/poll") or path.endswith("/stream"))

    create_http_server(app, inline=quick, host=a.host, port=a.port, threads=a.threads).run()


if __name__ == "__main__":
    main()
