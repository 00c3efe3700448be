"""SQL statements and write transactions per 1-activity workflow, in-process (SQLite, no sockets).

Drives the API through the WSGI app, as a worker would, and counts what the store executes:

  plain  the shared harness's raw worker, no opt-in fields: start, poll, commands, poll (activity),
         complete, poll, commands = 7 requests
  eager  the opt-in fields: start, /poll (max_tasks), commands with eager_activities + eager_workflow_task
         (answers the activity task), complete with eager_workflow_task (answers the workflow task),
         commands = 5 requests
  held   the plain worker as bench/engine_cpu.py and the shared harness run it: a workflow-task and an
         activity long-poll held (threads) while the workflow is started, so each task is handed over by
         the transaction that made it ready (7 requests, no empty polls)

Counted per workflow: every SQL statement the connections execute (a trigger's statements are counted
apart), write transactions (logical: one `store.tx()` each) and read transactions, and the statements
per table and verb (`--detail`). Figures do not depend on the machine's load: they are counts.

    .venv/bin/python bench/sql_per_workflow.py [--workflows 50] [--detail]
"""

from __future__ import annotations

import argparse
import collections
import re
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assay.api import make_app  # noqa: E402
from assay.config import load_settings  # noqa: E402
from assay.engine import Engine  # noqa: E402
from assay.store import open_store  # noqa: E402
from tests.wsgi import Client  # noqa: E402

#: statements that are transaction plumbing, not work (counted apart)
PLUMBING = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.I)


class Counter:
    def __init__(self) -> None:
        self.on = False
        self.stmts: collections.Counter[str] = collections.Counter()
        self.plumbing = 0
        self.triggers = 0
        self.writes = 0
        self.reads = 0
        self.last: dict[int, str] = {}

    def trace(self, sql: str) -> None:
        if not self.on:
            return
        s = " ".join(sql.split())
        tid = threading.get_ident()
        last, self.last[tid] = self.last.get(tid), s
        if s == last:
            # a trigger's statement: Python's trace callback reports each with the text of the statement
            # that fired it (the expanded text carries the bound values, so two real statements in a row
            # are hardly ever the same text)
            self.triggers += 1
        elif PLUMBING.match(s):
            self.plumbing += 1
        else:
            self.stmts[_shape(s)] += 1


def _shape(sql: str) -> str:
    """A statement's verb and table, e.g. 'SELECT workflows' (a WITH ... UPDATE: 'UPDATE <table>')."""
    for verb, pattern in (
        ("INSERT", r"\bINSERT INTO\s+(\w+)"),
        ("UPDATE", r"\bUPDATE\s+(\w+)\s+SET\b"),
        ("DELETE", r"\bDELETE FROM\s+(\w+)"),
        ("SELECT", r"^SELECT\b.*?\bFROM\s+(\w+)"),
    ):
        m = re.search(pattern, sql, re.I)
        if m:
            return f"{verb} {m.group(1)}"
    return sql[:40]


def open_counted(path: str, counter: Counter) -> Any:
    store = open_store(f"sqlite:///{path}", synchronous="OFF")
    store._writer.set_trace_callback(counter.trace)
    connect = store._connect

    def traced() -> sqlite3.Connection:
        conn = connect()
        conn.set_trace_callback(counter.trace)
        return conn

    store._connect = traced
    tx, read = store.tx, store.read

    @contextmanager
    def counted_tx():  # type: ignore[no-untyped-def]
        if counter.on:
            counter.writes += 1
        with tx() as t:
            yield t

    @contextmanager
    def counted_read():  # type: ignore[no-untyped-def]
        if counter.on:
            counter.reads += 1
        with read() as t:
            yield t

    store.tx, store.read = counted_tx, counted_read
    return store


def plain(api: Client, wid: str, i: int, tag: str) -> None:
    poll = {"queue": "q", "worker_id": wid}
    api.post("/workflows", {"workflow_type": "B", "workflow_id": f"{tag}-{i}", "task_queue": "q"})
    t = api.post("/workflow-tasks/poll", poll).json
    cmd = {"type": "ScheduleActivity", "seq": 1, "name": "a"}
    api.post(f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": wid, "commands": [cmd]})
    a = api.post("/tasks/poll", poll).json
    api.post(f"/tasks/{a['id']}/complete", {"result": 1, "worker_id": wid})
    t = api.post("/workflow-tasks/poll", poll).json
    done = {"type": "CompleteWorkflow", "result": 1}
    r = api.post(f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": wid, "commands": [done]})
    assert r.status == 200, r.text


def eager(api: Client, wid: str, i: int, tag: str) -> None:
    api.post("/workflows", {"workflow_type": "B", "workflow_id": f"{tag}-{i}", "task_queue": "q"})
    got = api.post("/poll", {"queue": "q", "worker_id": wid, "max_tasks": 8}).json
    (item,) = got["tasks"]
    assert item["kind"] == "workflow_task", item
    cmd = {"type": "ScheduleActivity", "seq": 1, "name": "a"}
    body = {"worker_id": wid, "commands": [cmd], "eager_activities": 1, "eager_workflow_task": True}
    out = api.post(f"/workflow-tasks/{item['task']['workflow_id']}/commands", body).json
    (act,) = out["activity_tasks"]
    body = {"result": 1, "worker_id": wid, "eager_workflow_task": True}
    wf_task = api.post(f"/tasks/{act['id']}/complete", body).json["workflow_task"]
    assert wf_task is not None
    done = {"type": "CompleteWorkflow", "result": 1}
    r = api.post(f"/workflow-tasks/{wf_task['workflow_id']}/commands", {"worker_id": wid, "commands": [done]})
    assert r.status == 200, r.text


class Held:
    """A plain worker with held long-polls (two threads), driven one workflow at a time."""

    def __init__(self, api: Client, engine: Engine, wid: str) -> None:
        self.api, self.engine, self.wid = api, engine, wid
        self.stop = threading.Event()
        self.done = threading.Semaphore(0)
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.wf_loop, self.act_loop)]
        for t in self.threads:
            t.start()

    def wf_loop(self) -> None:
        poll = {"queue": "q", "worker_id": self.wid, "wait_secs": 1}
        while not self.stop.is_set():
            t = self.api.post("/workflow-tasks/poll", poll).json
            if not t:
                continue
            finished = any(e["event_type"] == "ActivityCompleted" for e in t["history"])
            cmd = (
                {"type": "CompleteWorkflow", "result": 1}
                if finished
                else {"type": "ScheduleActivity", "seq": 1, "name": "a"}
            )
            body = {"worker_id": self.wid, "commands": [cmd]}
            r = self.api.post(f"/workflow-tasks/{t['workflow_id']}/commands", body)
            assert r.status == 200, r.text
            if finished:
                self.done.release()

    def act_loop(self) -> None:
        poll = {"queue": "q", "worker_id": self.wid, "wait_secs": 1}
        while not self.stop.is_set():
            a = self.api.post("/tasks/poll", poll).json
            if a and a.get("id") is not None:
                self.api.post(f"/tasks/{a['id']}/complete", {"result": 1, "worker_id": self.wid})

    def __call__(self, api: Client, wid: str, i: int, tag: str) -> None:
        deadline = time.monotonic() + 10
        while not all(self.engine.notifier.has_waiters(k) for k in ("wf:q", "act:q")):  # both polls held
            assert time.monotonic() < deadline, "the polls were not held"
            time.sleep(0.0005)
        api.post("/workflows", {"workflow_type": "B", "workflow_id": f"{tag}-{i}", "task_queue": "q"})
        assert self.done.acquire(timeout=10), f"{tag}-{i} did not complete"


def measure(flow: str, n: int, tmp: str) -> Counter:
    counter = Counter()
    store = open_counted(f"{tmp}/{flow}.db", counter)
    settings = load_settings({"backend": "sqlite::memory:"}, environ={"ASSAY_METRICS": "1"})
    engine = Engine(store, settings=settings)
    api = Client(make_app(engine), prefix="/api/v1")
    reg = {"identity": "b", "queue": "q", "workflows": ["B"], "activities": ["a"]}
    wid = api.post("/workers/register", reg).json["worker_id"]
    held = Held(api, engine, wid) if flow == "held" else None
    run = held or (plain if flow == "plain" else eager)
    for i in range(5):  # warm: first-use statements (namespace rows, reader connections)
        run(api, wid, i, "warm")
    counter.on = True
    for i in range(n):
        run(api, wid, i, flow)
    counter.on = False
    status = engine.get_workflow(f"{flow}-{n - 1}")["status"]
    assert status == "COMPLETED", status
    if held is not None:
        held.stop.set()
        for t in held.threads:
            t.join(5)
    engine.notifier.close()
    store.close()
    return counter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=50)
    ap.add_argument("--detail", action="store_true", help="statements per verb and table")
    args = ap.parse_args()
    n = args.workflows
    with tempfile.TemporaryDirectory() as tmp:
        for flow in ("plain", "eager", "held"):
            c = measure(flow, n, tmp)
            total = sum(c.stmts.values())
            print(
                f"{flow:5}: {total / n:5.1f} SQL statements/wf (+{c.triggers / n:.1f} in triggers, "
                f"+{c.plumbing / n:.1f} BEGIN/SAVEPOINT/COMMIT), {c.writes / n:.1f} write tx/wf, "
                f"{c.reads / n:.1f} read tx/wf"
            )
            if args.detail:
                for shape, k in sorted(c.stmts.items(), key=lambda kv: (-kv[1], kv[0])):
                    print(f"         {k / n:5.1f}  {shape}")


if __name__ == "__main__":
    main()
