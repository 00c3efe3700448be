"""How soon `assay workflow wait` returns after the commit that completes the workflow.

Starts `assay serve` (SQLite, synchronous=FULL) and a raw-HTTP worker in this process. For each of N
workflows the main thread calls the SDK's `wait_for` (the function behind `assay workflow wait`) and is
already waiting (its event stream live) when the worker sends the commands that complete the workflow:
the activity holds the workflow back for `--hold` ms first. One clock (time.monotonic) for everything:

    sent       the worker sends the CompleteWorkflow commands
    committed  the engine's transaction that completed the workflow has committed (the engine runs in a
               child process that stamps the moment the transaction's after-commit effects start, on the
               same system-wide monotonic clock, into a file)
    answered   the worker has read that request's answer
    returned   wait_for returned the COMPLETED record

and prints p50/p95/max of `returned - committed` (the figure the performance issue asks about), and for
reference `returned - answered` and `committed - sent`.

    .venv/bin/python bench/wait_latency.py [--workflows 200] [--hold 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import engine_cpu  # noqa: E402
from engine_cpu import Conn  # noqa: E402

from assay.protocol import CommandType, EventType  # noqa: E402

QUEUE = "wait-bench"
stopping = threading.Event()  # set before the engine is stopped: the worker's threads then end quietly


def quietly(loop):
    def run() -> None:
        try:
            loop()
        except OSError:
            if not stopping.is_set():
                raise

    return run


class Stamps:
    """The worker's (sent, answered) per workflow; the waiter may return before the worker has read its
    answer, so `get` blocks until the stamp is there."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[float, float]] = {}
        self.cond = threading.Condition()

    def put(self, wf_id: str, sent: float, answered: float) -> None:
        with self.cond:
            self.by_id[wf_id] = (sent, answered)
            self.cond.notify_all()

    def get(self, wf_id: str) -> tuple[float, float]:
        with self.cond:
            if not self.cond.wait_for(lambda: wf_id in self.by_id, 30):
                raise SystemExit(f"the worker never completed {wf_id}")
            return self.by_id[wf_id]


def worker(port: int, hold: float, stamps: Stamps, ready: threading.Event) -> None:
    reg = Conn(port)
    wid = reg.call(
        "POST",
        "/workers/register",
        {"identity": "wait-bench", "queue": QUEUE, "workflows": ["Waited"], "activities": ["hold"]},
    )[1]["worker_id"]
    ready.set()

    def wf_loop() -> None:
        c = Conn(port)
        while not stopping.is_set():
            _, task = c.call(
                "POST", "/workflow-tasks/poll", {"queue": QUEUE, "worker_id": wid, "wait_secs": 20}
            )
            if not task:
                continue
            done = any(e.get("event_type") == EventType.ActivityCompleted for e in task.get("history") or [])
            wf_id = task["workflow_id"]
            if not done:
                cmd = {"type": CommandType.ScheduleActivity, "seq": 1, "name": "hold", "task_queue": QUEUE}
                c.call("POST", f"/workflow-tasks/{wf_id}/commands", {"worker_id": wid, "commands": [cmd]})
                continue
            cmd = {"type": CommandType.CompleteWorkflow, "result": {"ok": True}}
            sent = time.monotonic()
            c.call("POST", f"/workflow-tasks/{wf_id}/commands", {"worker_id": wid, "commands": [cmd]})
            stamps.put(wf_id, sent, time.monotonic())

    def act_loop() -> None:
        c = Conn(port)
        while not stopping.is_set():
            _, task = c.call("POST", "/tasks/poll", {"queue": QUEUE, "worker_id": wid, "wait_secs": 20})
            if not task or task.get("id") is None:
                continue
            time.sleep(hold)  # the workflow is held back so the waiter is surely waiting at the commit
            c.call("POST", f"/tasks/{task['id']}/complete", {"result": {"ok": True}})

    threading.Thread(target=quietly(act_loop), daemon=True).start()
    quietly(wf_loop)()


def serve_stamped(stamp_file: str, argv: list[str]) -> None:
    """`assay serve` whose transactions that complete a workflow write "<workflow id> <monotonic>" to
    `stamp_file` the moment their after-commit effects start (SSE publication is one of them)."""
    from assay.engine import notify
    from assay.protocol import SseEvent

    out = open(stamp_file, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    flush = notify.Effects.flush

    def stamped(self, notifier, broadcaster) -> None:
        now = time.monotonic()
        for event_type, data in self.events:
            if event_type == SseEvent.workflow_completed:
                out.write(f"{data['workflow_id']} {now!r}\n")
        flush(self, notifier, broadcaster)

    notify.Effects.flush = stamped
    from assay.cli import main as cli_main

    cli_main(["serve", *argv])


def read_stamps(stamp_file: str) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for line in Path(stamp_file).read_text().splitlines():
        wf_id, t = line.split()
        stamps[wf_id] = float(t)
    return stamps


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflows", type=int, default=200)
    ap.add_argument("--hold", type=float, default=30.0, help="ms the activity holds each workflow back")
    ap.add_argument("--backend", default=None)
    args = ap.parse_args()

    from assay.sdk.client import Client

    with tempfile.TemporaryDirectory() as tmp:
        stamp_file = str(Path(tmp) / "commits.txt")
        proc, port = engine_cpu.start_engine(tmp, args.backend, None, [__file__, "_serve", stamp_file])
        try:
            stamps = Stamps()
            ready = threading.Event()
            threading.Thread(target=worker, args=(port, args.hold / 1000, stamps, ready), daemon=True).start()
            ready.wait(30)
            client = Client(f"http://127.0.0.1:{port}")
            returned_at: dict[str, float] = {}
            for i in range(args.workflows):
                wf_id = f"waited-{i}"
                client.start_workflow("Waited", workflow_id=wf_id, task_queue=QUEUE)
                rec = client.wait(wf_id, timeout=30)
                returned_at[wf_id] = time.monotonic()
                assert rec["status"] == "COMPLETED", rec  # noqa: S101 - a bench sanity check
            committed = read_stamps(stamp_file)
            rows: dict[str, list[float]] = {
                "returned - committed": [],
                "returned - answered": [],
                "committed - sent": [],
            }
            for wf_id, returned in returned_at.items():
                sent, answered = stamps.get(wf_id)
                rows["returned - committed"].append((returned - committed[wf_id]) * 1000)
                rows["returned - answered"].append((returned - answered) * 1000)
                rows["committed - sent"].append((committed[wf_id] - sent) * 1000)
        finally:
            stopping.set()
            proc.terminate()
            proc.wait(15)
    print(f"workflows: {args.workflows}, activity hold {args.hold:g} ms, backend {args.backend or 'sqlite'}")
    for name, xs in rows.items():
        print(
            f"{name:>20}: p50 {statistics.median(xs):6.2f} ms  p95 {pct(xs, 95):6.2f} ms  max {max(xs):6.2f} ms"
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_serve":
        serve_stamped(sys.argv[2], sys.argv[3:])
    else:
        main()
