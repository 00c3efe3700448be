"""Long histories, Lua worker side: does step 1,000 of a workflow cost the `assay run` worker what step 10
does?

One workflow of N (default 1,000) sequential activities against a real `assay serve` (SQLite), run by one
`assay run` Lua worker. The activity stops at the edges of two windows of steps (near step 10 and near
step N) until the bench lets it go, so the worker's CPU time (/proc/PID/stat, utime+stime, all threads) is
read while it is idle; the bench prints the worker's and the engine's CPU ms per step in each window and the
ratios end/start.

Variants: `sticky` (the default worker: keeps the suspended handler, gets only the new events) and
`replay` (ASSAY_WORKER_STICKY_CACHE=0: not sticky, every task replays the full history, as before).

    .venv/bin/python bench/lua_long_history.py [--steps 1000] [--window 20] [--variant sticky|replay|all]

The machine may be loaded: compare the ratios and CPU per step of runs made in the same conditions.
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

from engine_cpu import cpu_s  # noqa: E402

from tests.helpers import http, start_engine, wait_until  # noqa: E402
from tests.lua.e2e import Worker, start, wait_status  # noqa: E402

WORKER = """
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
local dir = env.get("BENCH_DIR")
workflow.define("Long", function(ctx, input)
  local total = 0
  for k = 1, input.n do total = total + ctx:execute_activity("step", { k = k, stop = input.stops[tostring(k)] }) end
  return total
end)
workflow.activity("step", function(actx, input)
  if input.stop then -- a window edge: tell the bench, wait until it has read our CPU time
    fs.write(dir .. "/at-" .. input.k, "")
    while not fs.exists(dir .. "/go-" .. input.k) do sleep(0.005) end
  end
  return 1
end)
workflow.listen({ queue = "long" })
"""


def run_variant(steps: int, window: int, variant: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        script = d / "long_worker.lua"
        script.write_text(WORKER)
        (d / "engine").mkdir()
        engine = start_engine(d / "engine")
        env = {
            "ASSAY_WORKER_HEARTBEAT_SECS": "5",
            "BENCH_DIR": str(d),
            "ASSAY_WORKER_STICKY_CACHE": "500" if variant == "sticky" else "0",
        }
        w = Worker(script, engine.url, d, queue="long", env=env)
        try:
            w.wait_ready()
            a0 = 10
            edges = [a0, a0 + window, steps - window, steps]
            start(
                engine, "Long", "long-1", {"n": steps, "stops": {str(k): True for k in edges}}, queue="long"
            )
            cpu, eng_cpu = {}, {}
            t0 = time.monotonic()
            for k in edges:
                wait_until(lambda k=k: (d / f"at-{k}").exists(), 600, interval=0.005, what=f"step {k}")
                cpu[k] = cpu_s(w.proc.pid)
                eng_cpu[k] = cpu_s(engine.proc.pid)
                (d / f"go-{k}").write_text("")
            wf = wait_status(engine, "long-1", timeout=60)
            assert wf["status"] == "COMPLETED" and wf["result"] == steps, wf
            status, evs, _ = http("GET", engine.api + "/workflows/long-1/events")
            wall = time.monotonic() - t0
        finally:
            w.stop()
            engine.stop()
    start_ms = (cpu[a0 + window] - cpu[a0]) * 1000 / window
    end_ms = (cpu[steps] - cpu[steps - window]) * 1000 / window
    eng_start = (eng_cpu[a0 + window] - eng_cpu[a0]) * 1000 / window
    eng_end = (eng_cpu[steps] - eng_cpu[steps - window]) * 1000 / window
    return {
        "variant": variant,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "eng_start_ms": eng_start,
        "eng_end_ms": eng_end,
        "events": len(evs),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--variant", choices=["sticky", "replay", "all"], default="all")
    a = ap.parse_args(argv)
    variants = ["replay", "sticky"] if a.variant == "all" else [a.variant]
    print(f"CPU per step, {a.steps} sequential activities, windows of {a.window} steps (worker | engine)")
    print(
        f"{'variant':8} {'worker 10..':>12} {'last steps':>12} {'ratio':>7} "
        f"{'engine 10..':>12} {'last steps':>12} {'ratio':>7} {'events':>7} {'wall s':>7}"
    )
    for v in variants:
        r = run_variant(a.steps, a.window, v)
        print(
            f"{v:8} {r['start_ms']:10.2f}ms {r['end_ms']:10.2f}ms {r['end_ms'] / r['start_ms']:6.2f}x "
            f"{r['eng_start_ms']:10.2f}ms {r['eng_end_ms']:10.2f}ms {r['eng_end_ms'] / r['eng_start_ms']:6.2f}x "
            f"{r['events']:7d} {r['wall_s']:7.1f}"
        )


if __name__ == "__main__":
    main()
