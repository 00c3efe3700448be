"""The stack's floor: the least an engine on bottle + waitress + SQLite can cost for the harness's raw worker.

A deliberately minimal stand-in for `assay serve` that speaks just enough of the protocol for the shared
harness's raw-HTTP worker and its latency / throughput workloads (start, register, the two long-polls,
commands, activity complete, describe, SSE completion frames). It does the least any durable engine must:

- one SQLite transaction (WAL, synchronous=FULL) per write request (start, commands, complete), holding
  the workflow row, its history events and its tasks, committed before the answer;
- long-polls held on a condition, handed a ready task from memory (claims are not written: cheaper than
  any real engine, which makes this a lower bound);
- SSE frames written by the stream's own thread.

No validation, auth, namespaces, metrics, fencing, timers or retries. It exists to answer one question:
on this machine and this stack, how fast can the harness's raw worker go at best? Run the harness against
it by pointing ASSAY_CHECKOUT at a folder whose `assay.py` runs this file:

    mkdir -p /tmp/floorco && echo "import runpy; runpy.run_path('$PWD/bench/stack_floor.py', run_name='__main__')" \\
        > /tmp/floorco/assay.py
    ASSAY_CHECKOUT=/tmp/floorco ASSAY_PYTHON=$PWD/.venv/bin/python bash ../shared/bench/run.sh --variants raw

or on its own: `.venv/bin/python bench/stack_floor.py serve --port 8085 --backend sqlite:///tmp/f.db`.
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

import bottle
import waitress

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from assay.protocol import CommandType, EventType, SseEvent, WorkflowStatus  # noqa: E402

API = "/api/v1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (id TEXT PRIMARY KEY, type TEXT, queue TEXT, input TEXT, status TEXT,
                                      result TEXT);
CREATE TABLE IF NOT EXISTS events (wf_id TEXT, seq INTEGER, type TEXT, data TEXT, PRIMARY KEY (wf_id, seq));
CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, kind TEXT, wf_id TEXT, queue TEXT, input TEXT,
                                  done INTEGER DEFAULT 0);
"""


class Floor:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()  # one writer
        self.mu = threading.Lock()
        self.conds: dict[tuple[str, str], threading.Condition] = {}
        self.ready: dict[tuple[str, str], collections.deque] = collections.defaultdict(collections.deque)
        self.wfs: dict[str, dict] = {}  # id -> {"input", "history": [...], "status", "queue"}
        self.acts: dict[int, dict] = {}
        self.ids = itertools.count(1)
        self.workers: dict[str, str] = {}
        self.streams: list[queue.SimpleQueue] = []

    # -- writes: one durable transaction each, then wake a poller and the streams
    def _commit(self, stmts: list[tuple[str, tuple]]) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            for sql, args in stmts:
                self.db.execute(sql, args)
            self.db.execute("COMMIT")

    def _cond(self, key: tuple[str, str]) -> threading.Condition:
        c = self.conds.get(key)
        if c is None:
            with self.mu:
                c = self.conds.setdefault(key, threading.Condition(self.mu))
        return c

    def _ready(self, kind: str, q: str, item: dict) -> None:
        c = self._cond((kind, q))
        with c:
            self.ready[(kind, q)].append(item)
            c.notify()

    def _publish(self, event: str, wf_id: str) -> None:
        frame = (
            f"event: {event}\ndata: {json.dumps({'workflow_id': wf_id, 'event_type': event})}\n\n".encode()
        )
        for s in list(self.streams):
            s.put(frame)

    def start(self, b: dict) -> dict:
        wf_id, q = b["workflow_id"], b.get("task_queue") or "default"
        inp = b.get("input")
        ev = {"event_type": EventType.WorkflowStarted, "seq": 1}
        tid = next(self.ids)
        self._commit(
            [
                (
                    "INSERT INTO workflows VALUES (?,?,?,?,?,NULL)",
                    (wf_id, b.get("workflow_type"), q, json.dumps(inp), WorkflowStatus.RUNNING.value),
                ),
                ("INSERT INTO events VALUES (?,?,?,?)", (wf_id, 1, ev["event_type"].value, "{}")),
                ("INSERT INTO tasks (id, kind, wf_id, queue) VALUES (?,?,?,?)", (tid, "wf", wf_id, q)),
            ]
        )
        self.wfs[wf_id] = {"input": inp, "history": [ev], "status": WorkflowStatus.RUNNING, "queue": q}
        self._ready("wf", q, {"tid": tid, "workflow_id": wf_id})
        self._publish(SseEvent.workflow_started, wf_id)
        return {"workflow_id": wf_id, "run_id": wf_id, "status": WorkflowStatus.RUNNING}

    def commands(self, wf_id: str, b: dict) -> None:
        wf = self.wfs[wf_id]
        stmts, after = [], []
        for c in b.get("commands") or []:
            seq = len(wf["history"]) + 1
            if c["type"] == CommandType.ScheduleActivity:
                tid = next(self.ids)
                ev = {"event_type": EventType.ActivityScheduled, "seq": seq}
                stmts += [
                    (
                        "INSERT INTO events VALUES (?,?,?,?)",
                        (wf_id, seq, ev["event_type"].value, json.dumps(c)),
                    ),
                    (
                        "INSERT INTO tasks (id, kind, wf_id, queue, input) VALUES (?,?,?,?,?)",
                        (tid, "act", wf_id, c.get("task_queue") or wf["queue"], json.dumps(c.get("input"))),
                    ),
                ]
                self.acts[tid] = {"wf_id": wf_id, "input": c.get("input")}
                after.append(
                    ("act", c.get("task_queue") or wf["queue"], {"id": tid, "input": c.get("input")})
                )
            elif c["type"] == CommandType.CompleteWorkflow:
                ev = {"event_type": EventType.WorkflowCompleted, "seq": seq}
                stmts += [
                    ("INSERT INTO events VALUES (?,?,?,?)", (wf_id, seq, ev["event_type"].value, "{}")),
                    (
                        "UPDATE workflows SET status=?, result=? WHERE id=?",
                        (WorkflowStatus.COMPLETED.value, json.dumps(c.get("result")), wf_id),
                    ),
                ]
                after.append(("done", None, None))
            else:
                continue
            wf["history"].append(ev)
        self._commit(stmts)
        for kind, q, item in after:
            if kind == "done":
                wf["status"] = WorkflowStatus.COMPLETED
                self._publish(SseEvent.workflow_completed, wf_id)
            else:
                self._ready(kind, q, item)

    def complete(self, tid: int, b: dict) -> None:
        act = self.acts.pop(tid)
        wf = self.wfs[act["wf_id"]]
        seq = len(wf["history"]) + 1
        wtid = next(self.ids)
        self._commit(
            [
                ("UPDATE tasks SET done=1 WHERE id=?", (tid,)),
                (
                    "INSERT INTO events VALUES (?,?,?,?)",
                    (act["wf_id"], seq, EventType.ActivityCompleted.value, json.dumps(b.get("result"))),
                ),
                (
                    "INSERT INTO tasks (id, kind, wf_id, queue) VALUES (?,?,?,?)",
                    (wtid, "wf", act["wf_id"], wf["queue"]),
                ),
            ]
        )
        wf["history"].append(
            {"event_type": EventType.ActivityCompleted, "seq": seq, "result": b.get("result")}
        )
        self._ready("wf", wf["queue"], {"tid": wtid, "workflow_id": act["wf_id"]})

    def poll(self, kind: str, b: dict) -> dict:
        key = (kind, b.get("queue") or "default")
        wait = float(b.get("wait_secs") or 0)
        c = self._cond(key)
        with c:
            dq = self.ready[key]
            if not dq and wait > 0:
                c.wait_for(lambda: bool(dq), timeout=wait)
            if not dq:
                return {}
            item = dq.popleft()
        if kind == "act":
            return item
        wf = self.wfs[item["workflow_id"]]
        return {"workflow_id": item["workflow_id"], "input": wf["input"], "history": wf["history"]}


def make_app(floor: Floor) -> bottle.Bottle:
    app = bottle.Bottle()
    app.config["autojson"] = True

    def body() -> dict:
        return json.loads(bottle.request.body.read() or b"{}")

    @app.get(API + "/health")
    def health():
        return {"status": "ok"}

    @app.get(API + "/version")
    def version():
        return {"version": "stack-floor"}

    @app.post(API + "/workers/register")
    def register():
        b = body()
        wid = f"w{next(floor.ids)}"
        floor.workers[wid] = b.get("queue")
        return {"worker_id": wid}

    @app.post(API + "/workers/heartbeat")
    def heartbeat():
        return {}

    @app.get(API + "/workers")
    def workers():
        return json.dumps([{"worker_id": w, "task_queue": q} for w, q in floor.workers.items()])

    @app.post(API + "/workflows")
    def start():
        bottle.response.status = 201
        return floor.start(body())

    @app.get(API + "/workflows/<wf_id>")
    def describe(wf_id):
        wf = floor.wfs.get(wf_id)
        if wf is None:
            bottle.abort(404)
        return {"workflow_id": wf_id, "status": wf["status"]}

    @app.post(API + "/workflows/<wf_id>/cancel")
    def cancel(wf_id):
        return {}

    @app.post(API + "/workflow-tasks/poll")
    def wf_poll():
        return floor.poll("wf", body())

    @app.post(API + "/tasks/poll")
    def act_poll():
        return floor.poll("act", body())

    @app.post(API + "/workflow-tasks/<wf_id>/commands")
    def commands(wf_id):
        floor.commands(wf_id, body())
        return {}

    @app.post(API + "/tasks/<tid:int>/complete")
    def complete(tid):
        floor.complete(tid, body())
        return {}

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
