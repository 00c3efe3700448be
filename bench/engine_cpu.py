"""Engine-side cost of a workflow: engine CPU ms and HTTP requests per workflow (robust to machine load).

Starts `assay serve` (SQLite, synchronous=FULL), an SSE watcher (completion is seen on the stream, as
`assay workflow wait` sees it), and 2 raw-HTTP worker processes, runs N 1-activity and N 3-activity
workflows started back to back, and prints per workflow: engine CPU (utime+stime of the engine process,
from /proc), requests sent by the starter + workers, and the wall-clock rate (noisy on a shared machine).

Worker modes:
  plain   the shared harness's raw worker: one long-poll thread per task kind, no opt-in fields
          (start, poll, commands, poll, complete, poll, commands = 7 requests per 1-activity workflow)
  eager   the same loop using the opt-in protocol fields: `eager_activities` / `eager_workflow_task` on
          commands and complete (the response carries the next task) and `max_tasks` batch polls

    .venv/bin/python bench/engine_cpu.py [--workflows 300] [--worker plain|eager] [--latency 50]
    .venv/bin/python bench/engine_cpu.py --profile /tmp/engine.prof   # cProfile of every engine thread
    .venv/bin/python -c "import pstats; pstats.Stats('/tmp/engine.prof').sort_stats('tottime').print_stats(30)"
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

API = "/api/v1"


class Conn:
    """One keep-alive JSON connection; counts the requests it sends."""

    def __init__(self, port: int, counter=None) -> None:
        self.port = port
        self.counter = counter
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.counter is not None:
            with self.counter.get_lock():
                self.counter.value += 1
        for attempt in range(2):
            try:
                self.c.request(method, API + path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw.strip() else None)
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")


# --- workers -----------------------------------------------------------------------------------
def _commands_for(task: dict, queue: str) -> list[dict]:
    inp = task.get("input") or {}
    steps = int(inp.get("steps") or 1)
    done = sum(1 for e in task.get("history") or [] if e.get("event_type") == "ActivityCompleted")
    if done < steps:
        return [
            {
                "type": "ScheduleActivity",
                "seq": done + 1,
                "name": "bench_act",
                "task_queue": queue,
                "input": {"i": inp.get("i"), "k": done + 1},
            }
        ]
    return [{"type": "CompleteWorkflow", "result": {"i": inp.get("i"), "steps": steps}}]


def plain_worker(port: int, queue: str, counter, ready) -> None:
    """The shared harness's raw worker: a workflow-task poll thread and an activity poll thread."""
    reg = Conn(port, counter)
    wid = reg.call(
        "POST",
        "/workers/register",
        {"identity": "bench", "queue": queue, "workflows": ["Bench"], "activities": ["bench_act"]},
    )[1]["worker_id"]
    ready.release()

    def wf_loop() -> None:
        c = Conn(port, counter)
        while True:
            st, task = c.call(
                "POST", "/workflow-tasks/poll", {"queue": queue, "worker_id": wid, "wait_secs": 20}
            )
            if not task:
                continue
            c.call(
                "POST",
                f"/workflow-tasks/{task['workflow_id']}/commands",
                {"worker_id": wid, "commands": _commands_for(task, queue)},
            )

    def act_loop() -> None:
        c = Conn(port, counter)
        while True:
            st, task = c.call("POST", "/tasks/poll", {"queue": queue, "worker_id": wid, "wait_secs": 20})
            if not task or task.get("id") is None:
                continue
            inp = task.get("input") or {}
            c.call("POST", f"/tasks/{task['id']}/complete", {"result": {"i": inp.get("i"), "ok": True}})

    threading.Thread(target=act_loop, daemon=True).start()
    wf_loop()


def eager_worker(port: int, queue: str, counter, ready) -> None:
    """The same work with the opt-in fields: eager hand-over on commands/complete, batch polls."""
    reg = Conn(port, counter)
    wid = reg.call(
        "POST",
        "/workers/register",
        {"identity": "bench-eager", "queue": queue, "workflows": ["Bench"], "activities": ["bench_act"]},
    )[1]["worker_id"]
    ready.release()

    def run_activity(c: Conn, task: dict) -> dict | None:
        """Complete one activity; returns the workflow task the engine handed back (or None)."""
        inp = task.get("input") or {}
        st, out = c.call(
            "POST",
            f"/tasks/{task['id']}/complete",
            {"result": {"i": inp.get("i"), "ok": True}, "worker_id": wid, "eager_workflow_task": True},
        )
        return (out or {}).get("workflow_task") if st == 200 else None

    def run_workflow_task(c: Conn, task: dict | None) -> None:
        while task:
            st, out = c.call(
                "POST",
                f"/workflow-tasks/{task['workflow_id']}/commands",
                {
                    "worker_id": wid,
                    "commands": _commands_for(task, queue),
                    "eager_activities": 1,
                    "eager_workflow_task": True,
                },
            )
            out = out if st == 200 and isinstance(out, dict) else {}
            task = None
            for act in out.get("activity_tasks") or []:
                task = run_activity(c, act) or task
            task = out.get("workflow_task") or task

    def loop() -> None:
        c = Conn(port, counter)
        while True:
            st, got = c.call(
                "POST", "/poll", {"queue": queue, "worker_id": wid, "wait_secs": 20, "max_tasks": 8}
            )
            for item in (got or {}).get("tasks") or []:
                if item["kind"] == "workflow_task":
                    run_workflow_task(c, item["task"])
                else:
                    run_workflow_task(c, run_activity(c, item["task"]))

    threading.Thread(target=loop, daemon=True).start()
    loop()


# --- completion watcher (SSE) -----------------------------------------------------------------------
class Watcher:
    def __init__(self, port: int) -> None:
        self.cond = threading.Condition()
        self.done: dict[str, float] = {}
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        c.request("GET", API + "/events/stream")
        self.r = c.getresponse()
        assert self.r.status == 200, self.r.status
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        ev = None
        while True:
            line = self.r.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:") and ev == "workflow_completed":
                wid = json.loads(line[5:])["workflow_id"]
                with self.cond:
                    self.done[wid] = time.perf_counter()
                    self.cond.notify_all()

    def wait(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(i in self.done for i in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


# --- the engine -----------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def serve_profiled(argv: list[str], out: str) -> None:
    """Run `assay serve` with a cProfile in every thread; write the merged stats at exit."""
    import atexit
    import cProfile
    import pstats

    profs: list[cProfile.Profile] = []

    def hook(*_a) -> None:
        p = cProfile.Profile(time.thread_time)
        profs.append(p)
        p.enable()

    threading.setprofile(hook)
    main_prof = cProfile.Profile(time.thread_time)
    profs.append(main_prof)

    def dump() -> None:
        main_prof.disable()
        st = pstats.Stats(main_prof)
        for p in profs[1:]:
            try:
                st.add(p)
            except TypeError:  # a thread that never ran
                pass
        st.dump_stats(out)

    atexit.register(dump)
    from assay.cli import main

    main_prof.enable()
    main(["serve", *argv])


def start_engine(tmp: str, backend: str | None, profile: str | None, wrapper: list[str] | None = None):
    """`assay serve` on a free port; with `profile`, under serve_profiled; with `wrapper` (a script and its
    leading arguments), as `python <wrapper...> <serve args>`."""
    from tests.helpers import free_port

    port = free_port()
    backend = backend or f"sqlite:///{tmp}/engine.db"
    args = ["--port", str(port), "--backend", backend]
    if wrapper:
        argv = [sys.executable, *wrapper, *args]
    elif profile:
        argv = [sys.executable, __file__, "_serve", profile, *args]
    else:
        argv = [sys.executable, str(ROOT / "assay.py"), "serve", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    log = open(Path(tmp) / "engine.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            if Conn(port).call("GET", "/health")[0] == 200:
                return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"engine did not start: {(Path(tmp) / 'engine.log').read_text()[-2000:]}")
        time.sleep(0.1)


def run(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_engine(tmp, args.backend, args.profile)
        counter = multiprocessing.Value("q", 0)
        ready = multiprocessing.Semaphore(0)
        queue = "bench"
        target = eager_worker if args.worker == "eager" else plain_worker
        procs = [
            multiprocessing.Process(target=target, args=(port, queue, counter, ready), daemon=True)
            for _ in range(2)
        ]
        try:
            watcher = Watcher(port)
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire(timeout=30)
            starter = Conn(port, counter)
            print(f"worker mode: {args.worker}; 2 worker processes; SQLite synchronous=FULL")
            if args.latency:
                lat = []
                c0 = 0.0
                for i in range(args.latency + 5):
                    if i == 5:
                        c0 = cpu_s(proc.pid)
                    wid = f"lat-{i}"
                    t0 = time.perf_counter()
                    starter.call(
                        "POST",
                        "/workflows",
                        {
                            "workflow_type": "Bench",
                            "workflow_id": wid,
                            "task_queue": queue,
                            "input": {"i": i},
                        },
                    )
                    assert watcher.wait([wid], 30), f"{wid} did not complete"
                    if i >= 5:
                        lat.append((watcher.done[wid] - t0) * 1000)
                    time.sleep(0.02)
                lat_cpu = (cpu_s(proc.pid) - c0) / len(lat) * 1000
                lat.sort()
                print(
                    f"latency    1 activity   p50 {statistics.median(lat):6.1f} ms  "
                    f"p95 {lat[int(0.95 * (len(lat) - 1))]:6.1f} ms  (n={len(lat)}, 20 ms gap); "
                    f"engine CPU {lat_cpu:.2f} ms/wf one at a time"
                )
            for steps in args.steps:
                ids = [f"tp{steps}-{i}" for i in range(args.workflows)]
                time.sleep(0.3)  # let the workers settle into their polls
                c0, r0, t0 = cpu_s(proc.pid), counter.value, time.perf_counter()
                for i, wid in enumerate(ids):
                    starter.call(
                        "POST",
                        "/workflows",
                        {
                            "workflow_type": "Bench",
                            "workflow_id": wid,
                            "task_queue": queue,
                            "input": {"i": i, "steps": steps},
                        },
                    )
                assert watcher.wait(ids, 600), "throughput run did not finish"
                el = max(watcher.done[i] for i in ids) - t0
                cpu, reqs = cpu_s(proc.pid) - c0, counter.value - r0
                n = len(ids)
                print(
                    f"{steps}-activity  engine CPU {cpu / n * 1000:6.2f} ms/wf   requests {reqs / n:5.2f}/wf   "
                    f"{n / el:6.1f} wf/s  ({n} workflows)"
                )
        finally:
            for p in procs:
                p.terminate()
            proc.terminate()
            proc.wait(30)
            if args.profile:
                print(f"profile written to {args.profile}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_serve":
        serve_profiled(sys.argv[3:], sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflows", type=int, default=300, help="workflows per throughput run")
    ap.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3])
    ap.add_argument("--worker", choices=("plain", "eager"), default="plain")
    ap.add_argument("--latency", type=int, default=0, help="sequential latency samples first (0: none)")
    ap.add_argument("--backend", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--profile", help="write a cProfile of the engine (all threads) to this file")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
