"""Benchmark: Python workers (`assay run worker.py`) against a local engine (not a test).

For a workflow of 1 activity and one of 3 sequential activities, with one worker process:
* latency: start one workflow, wait until it is COMPLETED (sequential runs; p50 / p95),
* throughput: start a batch at once, time until every one is COMPLETED (workflows/s), with the CPU time
  the engine and the worker process spent per workflow in that phase (the figure to compare on a loaded
  machine).
With --lua the same workflows also run under a Lua worker, for comparison on the same machine. --steps N
adds a workflow of N sequential activities (where sticky replay state pays: compare --sticky-cache 0 with
the default against an engine that sends partial histories; --engine-path runs the engine from another
checkout).

    .venv/bin/python bench/python_worker.py [--runs 30] [--batch 100] [--concurrency 1] [--lua]
        [--max-tasks N] [--steps N] [--sticky-cache N] [--engine-path DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_cpu import cpu_s  # noqa: E402
from bench.lua_worker import Api, pct, wait_done  # noqa: E402
from tests.helpers import start_engine  # noqa: E402
from tests.lua.e2e import Worker  # noqa: E402

PY_WORKER = """
import os
from assay import workflow

@workflow.define("Bench1")
def bench1(ctx, input):
    return ctx.execute_activity("work", input)

@workflow.define("Bench3")
def bench3(ctx, input):
    a = ctx.execute_activity("work", input)
    b = ctx.execute_activity("work", a)
    return ctx.execute_activity("work", b)

@workflow.define("BenchN")
def bench_n(ctx, input):
    out = input
    for _ in range(input["steps"]):
        out = ctx.execute_activity("work", out)
    return out

@workflow.activity("work")
def work(actx, input):
    return {"n": input["n"], "done": True}

workflow.connect(os.environ["ASSAY_ENGINE_URL"])
workflow.listen(queue=os.environ["ASSAY_QUEUE"], concurrency=int(os.environ.get("BENCH_CONCURRENCY", "1")))
"""

LUA_WORKER = """
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
workflow.define("Bench1", function(ctx, input) return ctx:execute_activity("work", input) end)
workflow.define("Bench3", function(ctx, input)
  local a = ctx:execute_activity("work", input)
  local b = ctx:execute_activity("work", a)
  return ctx:execute_activity("work", b)
end)
workflow.define("BenchN", function(ctx, input)
  local out = input
  for _ = 1, input.steps do out = ctx:execute_activity("work", out) end
  return out
end)
workflow.activity("work", function(actx, input) return { n = input.n, done = true } end)
workflow.listen({ queue = env.get("ASSAY_QUEUE"), concurrency = tonumber(env.get("BENCH_CONCURRENCY") or "1") })
"""


STEPS = {"Bench1": 1, "Bench3": 3}


def start(api: Api, wf_type: str, wf_id: str, queue: str, n: int) -> None:
    status, out = api.call(
        "POST",
        "/workflows",
        {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue,
         "input": {"n": n, "steps": STEPS.get(wf_type, 0)}},
    )  # fmt: skip
    assert status == 201, out


def measure(
    api: Api, wf_type: str, queue: str, runs: int, batch: int, pids: tuple[int, int]
) -> tuple[list[float], float, float, float]:
    """(latencies, workflows/s, engine CPU s per workflow, worker CPU s per workflow)"""
    prefix = f"{queue}-{wf_type.lower()}"
    for i in range(3):  # warm-up
        start(api, wf_type, f"{prefix}-warm-{i}", queue, i)
        wait_done(api, f"{prefix}-warm-{i}")
    lat = []
    for i in range(runs):
        wid = f"{prefix}-lat-{i}"
        t0 = time.perf_counter()
        start(api, wf_type, wid, queue, i)
        wait_done(api, wid)
        lat.append(time.perf_counter() - t0)
    c0 = [cpu_s(p) for p in pids]
    t0 = time.perf_counter()
    ids = [f"{prefix}-tp-{i}" for i in range(batch)]
    for i, wid in enumerate(ids):
        start(api, wf_type, wid, queue, i)
    for wid in ids:  # polled gently so the measuring client does not load the engine
        wait_done(api, wid, timeout=600, every=0.05)
    rate = batch / (time.perf_counter() - t0)
    eng_cpu, wrk_cpu = ((cpu_s(p) - c) / batch for p, c in zip(pids, c0, strict=True))
    return lat, rate, eng_cpu, wrk_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="sequential workflows for latency")
    ap.add_argument("--batch", type=int, default=100, help="workflows started at once for throughput")
    ap.add_argument("--concurrency", type=int, default=1, help="slots of the worker process")
    ap.add_argument("--lua", action="store_true", help="also run the same workflows under a Lua worker")
    ap.add_argument("--max-tasks", default=None, help="ASSAY_WORKER_MAX_TASKS for the workers")
    ap.add_argument("--steps", type=int, default=0, help="also a workflow of this many sequential activities")
    ap.add_argument(
        "--sticky-cache",
        default=None,
        help="ASSAY_WORKER_STICKY_CACHE for the Python worker (0: no sticky state)",
    )
    ap.add_argument("--engine-path", default=None, help="run the engine from this checkout (compare engines)")
    ap.add_argument("--backend", default=None, help="engine backend URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "bench_worker.py").write_text(PY_WORKER)
        (tmpd / "bench_worker.lua").write_text(LUA_WORKER)
        eng_env = {"PYTHONPATH": args.engine_path} if args.engine_path else None
        eng = start_engine(tmpd, db=args.backend, env=eng_env)
        api = Api(eng.port)
        print(
            f"engine {eng.url} ({args.backend or 'sqlite, temporary file'}); {args.runs} sequential runs, "
            f"batch of {args.batch}; one worker process with {args.concurrency} slot(s)"
        )
        try:
            for lang in ("python", "lua") if args.lua else ("python",):
                script = tmpd / ("bench_worker.py" if lang == "python" else "bench_worker.lua")
                queue = f"bench-{lang}"
                env = {"BENCH_CONCURRENCY": str(args.concurrency)}
                if args.max_tasks:
                    env["ASSAY_WORKER_MAX_TASKS"] = str(args.max_tasks)
                if args.sticky_cache is not None:
                    env["ASSAY_WORKER_STICKY_CACHE"] = str(args.sticky_cache)
                w = Worker(script, eng.url, tmpd, queue=queue, env=env)
                w.wait_ready()
                try:
                    if args.steps:
                        STEPS["BenchN"] = args.steps
                    for wf_type, acts in STEPS.items():
                        lat, rate, ecpu, wcpu = measure(
                            api, wf_type, queue, args.runs, args.batch, (eng.proc.pid, w.proc.pid)
                        )
                        print(
                            f"{lang:6s} {acts:2d} activit{'y  ' if acts == 1 else 'ies'}: latency p50 "
                            f"{statistics.median(lat) * 1000:6.1f} ms  p95 {pct(lat, 95) * 1000:6.1f} ms   "
                            f"throughput {rate:6.1f} workflows/s   CPU/workflow engine "
                            f"{ecpu * 1000:5.2f} ms  worker {wcpu * 1000:5.2f} ms"
                        )
                finally:
                    w.stop()
        finally:
            eng.stop()


if __name__ == "__main__":
    main()
