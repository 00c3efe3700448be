"""Benchmark the engine core over loopback with raw-HTTP workers (no Lua, no SDK).

Prints:
  * describe:   GET /workflows/{id} requests/s (keep-alive connections, several client threads)
  * latency:    end-to-end latency of a 1-activity workflow, one at a time, with a long-polling worker
                (start -> workflow task -> ScheduleActivity -> activity -> complete -> workflow task ->
                CompleteWorkflow acknowledged), p50 / p95
  * throughput: workflows/s with 2 worker processes (each with a few long-polling threads)

Run by hand:  .venv/bin/python bench/engine.py [--seconds 5] [--latency-runs 200] [--workflows 500]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import start_engine  # noqa: E402


class Conn:
    """One keep-alive HTTP/1.1 connection speaking JSON."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self.c.request(method, "/api/v1" + path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.c.close()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def worker_loop(port: int, queue: str, stop, done=None) -> None:
    """Play a worker: one activity per workflow, then complete with its result."""
    c = Conn(port)
    wid = c.call("POST", "/workers/register", {"identity": "bench", "queue": queue})[1]["worker_id"]
    while not stop.is_set():
        _, got = c.call("POST", "/poll", {"queue": queue, "worker_id": wid, "wait_secs": 1})
        if got["kind"] == "activity_task":
            t = got["task"]
            c.call("POST", f"/tasks/{t['id']}/complete", {"result": t["input"], "worker_id": wid})
        elif got["kind"] == "workflow_task":
            t = got["task"]
            finished = [e for e in t["history"] if e["event_type"] == "ActivityCompleted"]
            if finished:
                cmds = [{"type": "CompleteWorkflow", "result": finished[0]["payload"]["result"]}]
            else:
                cmds = [{"type": "ScheduleActivity", "seq": 1, "name": "echo", "input": t["input"]}]
            status, _ = c.call(
                "POST", f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": wid, "commands": cmds}
            )
            if finished and status == 200 and done is not None:
                done(t["workflow_id"])


def worker_process(port: int, queue: str, threads: int, stop) -> None:
    ts = [threading.Thread(target=worker_loop, args=(port, queue, stop), daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def bench_describe(port: int, seconds: float, threads: int) -> float:
    c = Conn(port)
    assert (
        c.call("POST", "/workflows", {"workflow_type": "B", "workflow_id": "describe-me", "input": {"x": 1}})[
            0
        ]
        == 201
    )
    counts = [0] * threads
    end = time.perf_counter() + seconds

    def run(i: int) -> None:
        conn = Conn(port)
        while time.perf_counter() < end:
            status, _ = conn.call("GET", "/workflows/describe-me")
            assert status == 200
            counts[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def bench_latency(port: int, runs: int) -> list[float]:
    stop = threading.Event()
    finished: dict[str, threading.Event] = {}

    def done(wf_id: str) -> None:
        finished[wf_id].set()

    w = threading.Thread(target=worker_loop, args=(port, "lat", stop, done), daemon=True)
    w.start()
    c = Conn(port)
    out = []
    try:
        for i in range(runs + 10):  # the first 10 warm up
            wf_id = f"lat-{i}"
            finished[wf_id] = threading.Event()
            t0 = time.perf_counter()
            status, _ = c.call(
                "POST",
                "/workflows",
                {"workflow_type": "B", "workflow_id": wf_id, "task_queue": "lat", "input": i},
            )
            assert status == 201
            assert finished[wf_id].wait(30), f"{wf_id} did not finish"
            if i >= 10:
                out.append((time.perf_counter() - t0) * 1000)
    finally:
        stop.set()
        w.join(5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of the describe run")
    ap.add_argument("--clients", type=int, default=8, help="client threads for the describe run")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--workflows", type=int, default=500, help="workflows for the throughput run")
    ap.add_argument("--threads", type=int, default=4, help="long-polling threads per worker process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        e = start_engine(Path(tmp))
        try:
            rps = bench_describe(e.port, args.seconds, args.clients)
            print(
                f"describe       {rps:9.0f} req/s   ({args.clients} keep-alive clients, {args.seconds:g} s)"
            )
            lat = sorted(bench_latency(e.port, args.latency_runs))
            p95 = lat[int(0.95 * (len(lat) - 1))]
            print(f"latency        p50 {statistics.median(lat):6.1f} ms   p95 {p95:6.1f} ms   "
                  f"(1-activity workflow, long-poll, {len(lat)} runs one at a time)")  # fmt: skip
            # the latency runs completed already: count only the throughput ones
            base = Conn(e.port).call("GET", "/namespaces/main")[1]["completed"]
            wfs = bench_throughput_from(e.port, args.workflows, args.threads, base)
            print(f"throughput     {wfs:9.1f} workflows/s   ({args.workflows} workflows, 2 worker processes x "
                  f"{args.threads} threads)")  # fmt: skip
        finally:
            e.stop()


def bench_throughput_from(port: int, n: int, threads: int, base: int) -> float:
    stop = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=worker_process, args=(port, "tp", threads, stop), daemon=True)
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    c = Conn(port)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            status, _ = c.call(
                "POST",
                "/workflows",
                {"workflow_type": "B", "workflow_id": f"tp-{i}", "task_queue": "tp", "input": i},
            )
            assert status == 201
        while c.call("GET", "/namespaces/main")[1]["completed"] < base + n:
            time.sleep(0.05)  # a benchmark, not a test: plain polling of the counter is fine here
        return n / (time.perf_counter() - t0)
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()


if __name__ == "__main__":
    main()
