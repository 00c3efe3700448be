"""Long histories: does a step of a long workflow cost the engine what a step of a short one does?

One workflow of N (default 1,000) sequential activities against a real `assay serve` (SQLite), driven by
one raw-HTTP worker (workflow-task poll -> commands -> activity poll -> complete: one "step" per activity).
For a window of steps near step 10 and near step N it reads the engine process's CPU time (/proc/PID/stat,
utime+stime) and the wall time, and prints per step: engine CPU ms, wall ms, the size of the workflow
task's response, and the ratio end/start.

Worker variants:
  plain    registers without `sticky`: every workflow task carries the full history (upstream shape)
  sticky   registers with `"sticky": true`: it keeps the replay state (here: the count of completed
           activities and the last seen seq) and receives only the new events (`history_after`); on a
           task without `history_after` it replays the full history, fetching further pages with
           GET /workflows/{id}/events?after=&limit= while `history_next_after` says there is more.
  eager    sticky, and eager dispatch as the Lua worker uses it: the commands ask for the activity they
           schedule (`eager_activities`), its completion for the next workflow task (`eager_workflow_task`)

    .venv/bin/python bench/long_history.py [--steps 1000] [--window 20] [--variant plain|sticky|eager|all]

(Also run by bench/scale.py --long-history.) The machine may be loaded: compare the ratios and the CPU
per step of runs made in the same conditions, not absolute wall times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine_cpu import Conn, cpu_s, start_engine  # noqa: E402

QUEUE = "long"
VARIANTS = ("plain", "sticky", "eager")
PAGE = 1000


class Worker:
    """A single-threaded raw-HTTP worker running `Long`: schedule activity k+1 until N are done."""

    def __init__(self, port: int, sticky: bool, eager: bool = False) -> None:
        self.c = Conn(port)
        self.sticky = sticky
        self.eager = eager
        self.next_task: dict | None = None
        body = {"identity": "long-bench", "queue": QUEUE, "workflows": ["Long"], "activities": ["step"]}
        if sticky:
            body["sticky"] = True
        self.wid = self.c.call("POST", "/workers/register", body)[1]["worker_id"]
        self.cache: dict[str, tuple[int, int]] = {}  # workflow id -> (last seq seen, activities done)
        self.task_bytes = 0
        self.partial = 0
        self.full = 0

    def _replay(self, task: dict) -> int:
        """Completed activities as of this task (cached state + new events, or a full replay)."""
        wf_id = task["workflow_id"]
        events = task.get("history") or []
        after = task.get("history_after")
        cached = self.cache.get(wf_id)
        if after is not None and cached is not None and cached[0] == after:
            self.partial += 1
            done = cached[1]
        else:
            self.full += 1
            done = 0
            if after is not None:  # state lost: fetch the whole history
                events = []
                nxt: int | None = 0
            else:
                nxt = task.get("history_next_after")
            while nxt is not None:
                st, page = self.c.call("GET", f"/workflows/{wf_id}/events?after={nxt}&limit={PAGE}")
                assert st == 200, page
                events = events + page
                last = task.get("history_last_seq")
                nxt = (
                    page[-1]["seq"]
                    if page and len(page) == PAGE and (last is None or page[-1]["seq"] < last)
                    else None
                )
        done += sum(1 for e in events if e["event_type"] == "ActivityCompleted")
        if self.sticky:
            self.cache[wf_id] = (task.get("history_last_seq") or 0, done)
        return done

    def step(self) -> bool:
        """One workflow task (+ its activity). False once the workflow completed. With `eager`, the
        commands ask for the activity they schedule and its completion for the next workflow task (2
        requests per step, as the Lua worker does), so only the first task is polled for."""
        task = self.next_task
        self.next_task = None
        if task is None:
            st, task = self.c.call(
                "POST", "/workflow-tasks/poll", {"queue": QUEUE, "worker_id": self.wid, "wait_secs": 5}
            )
            assert st == 200 and task, (st, task)
        self.task_bytes = len(repr(task))
        done = self._replay(task)
        n = int((task.get("input") or {}).get("steps") or 1)
        wf_id = task["workflow_id"]
        if done >= n:
            cmds = [{"type": "CompleteWorkflow", "result": {"done": done}}]
        else:
            cmds = [
                {
                    "type": "ScheduleActivity",
                    "seq": done + 1,
                    "name": "step",
                    "task_queue": QUEUE,
                    "input": {"k": done + 1},
                }
            ]
        req: dict = {"worker_id": self.wid, "commands": cmds}
        if self.eager:
            req["eager_activities"] = 1
        st, body = self.c.call("POST", f"/workflow-tasks/{wf_id}/commands", req)
        assert st == 200, body
        if done >= n:
            self.cache.pop(wf_id, None)
            return False
        if self.eager and body and body.get("activity_tasks"):
            act = body["activity_tasks"][0]
        else:
            st, act = self.c.call(
                "POST", "/tasks/poll", {"queue": QUEUE, "worker_id": self.wid, "wait_secs": 5}
            )
            assert st == 200 and act and act.get("id") is not None, act
        done_req: dict = {"result": {"k": done + 1}}
        if self.eager:
            done_req.update(worker_id=self.wid, eager_workflow_task=True)
        st, body = self.c.call("POST", f"/tasks/{act['id']}/complete", done_req)
        assert st == 200, body
        if self.eager and body:
            self.next_task = body.get("workflow_task")
        return True


def run_variant(steps: int, window: int, variant: str, backend: str | None = None) -> dict:
    """Run one workflow of `steps` activities; engine CPU and wall per step over `window` steps from
    step ~10 and over the last `window` steps (window capped at steps/3)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_engine(tmp, backend, None)
        try:
            w = Worker(port, variant != "plain", eager=variant == "eager")
            st, _ = w.c.call(
                "POST",
                "/workflows",
                {
                    "workflow_type": "Long",
                    "workflow_id": "long-1",
                    "task_queue": QUEUE,
                    "input": {"steps": steps},
                },
            )
            assert st in (200, 201), st
            window = max(1, min(window, steps // 3))
            first = min(10, steps - 2 * window)
            starts = {"start": first, "end": max(first + window, steps - window)}
            out: dict[str, dict[str, float]] = {}
            k = 0
            for label in ("start", "end"):
                while k < starts[label]:
                    assert w.step()
                    k += 1
                c0, t0 = cpu_s(proc.pid), time.perf_counter()
                for _ in range(window):
                    assert w.step()
                    k += 1
                cpu, wall = cpu_s(proc.pid) - c0, time.perf_counter() - t0
                out[label] = {
                    "step": k,
                    "cpu_ms": 1000 * cpu / window,
                    "wall_ms": 1000 * wall / window,
                    "task_bytes": w.task_bytes,
                }
            while w.step():
                pass
            out["tasks"] = {"partial": w.partial, "full": w.full}
            return out
        finally:
            proc.terminate()
            proc.wait(30)


def report(steps: int, window: int, variants: list[str]) -> None:
    window = max(1, min(window, steps // 3))
    print(
        f"long history: 1 workflow x {steps} sequential activities, windows of {window} steps (machine may be loaded)"
    )
    print(f"{'worker':8} {'steps':>11} {'CPU ms/step':>12} {'wall ms/step':>13} {'task bytes':>11}")
    for v in variants:
        r = run_variant(steps, window, v)
        for label in ("start", "end"):
            x = r[label]
            first = int(x["step"]) - window + 1
            print(
                f"{v:8} {first:>5}-{int(x['step']):<5} {x['cpu_ms']:>12.2f} {x['wall_ms']:>13.2f} {int(x['task_bytes']):>11}"
            )
        ratio_cpu = r["end"]["cpu_ms"] / max(r["start"]["cpu_ms"], 1e-9)
        ratio_wall = r["end"]["wall_ms"] / max(r["start"]["wall_ms"], 1e-9)
        print(f"{v:8} end/start: engine CPU x{ratio_cpu:.2f}, wall x{ratio_wall:.2f}; tasks {r['tasks']}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--variant", choices=[*VARIANTS, "all"], default="all")
    a = ap.parse_args(argv)
    report(a.steps, a.window, list(VARIANTS) if a.variant == "all" else [a.variant])


if __name__ == "__main__":
    main()
