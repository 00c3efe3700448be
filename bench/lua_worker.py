"""Benchmark: `assay run` Lua workers against a local engine (not a test).

Measures, with 1 and then 2 worker processes, for a workflow that runs one activity:
* latency: start one workflow, wait until it is COMPLETED (sequential runs; p50 / p95),
* throughput: start a batch at once, time until every one is COMPLETED (workflows/s).

    .venv/bin/python bench/lua_worker.py [--runs 50] [--batch 200] [--backend sqlite:////tmp/b.db]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import start_engine  # noqa: E402
from tests.lua.e2e import Worker  # noqa: E402

WORKER = """
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
workflow.define("Bench", function(ctx, input) return ctx:execute_activity("work", input) end)
workflow.activity("work", function(actx, input) return { n = input.n, done = true } end)
workflow.listen({ queue = env.get("ASSAY_QUEUE") })
"""


class Api:
    """One keep-alive connection to the engine."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(
            method, "/api/v1" + path, body=data, headers={"Content-Type": "application/json"} if data else {}
        )
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)

    def start(self, wf_id: str, queue: str, n: int) -> None:
        status, out = self.call(
            "POST",
            "/workflows",
            {"workflow_type": "Bench", "workflow_id": wf_id, "task_queue": queue, "input": {"n": n}},
        )
        assert status == 201, out

    def status(self, wf_id: str) -> str:
        return self.call("GET", f"/workflows/{wf_id}")[1]["status"]


def wait_done(api: Api, wf_id: str, timeout: float = 60, every: float = 0.003) -> None:
    deadline = time.monotonic() + timeout
    while api.status(wf_id) != "COMPLETED":
        if time.monotonic() > deadline:
            raise SystemExit(f"{wf_id} did not complete")
        time.sleep(every)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure(api: Api, queue: str, runs: int, batch: int) -> tuple[list[float], float]:
    for i in range(3):  # warm-up
        api.start(f"{queue}-warm-{i}", queue, i)
        wait_done(api, f"{queue}-warm-{i}")
    lat = []
    for i in range(runs):
        wid = f"{queue}-lat-{i}"
        t0 = time.perf_counter()
        api.start(wid, queue, i)
        wait_done(api, wid)
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ids = [f"{queue}-tp-{i}" for i in range(batch)]
    for i, wid in enumerate(ids):
        api.start(wid, queue, i)
    for wid in ids:  # polled gently so the measuring client does not load the engine
        wait_done(api, wid, timeout=300, every=0.05)
    return lat, batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50, help="sequential workflows for latency")
    ap.add_argument("--batch", type=int, default=200, help="workflows started at once for throughput")
    ap.add_argument("--backend", default=None, help="engine backend URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        tmpd = Path(tmp)
        script = tmpd / "bench_worker.lua"
        script.write_text(WORKER)
        eng = start_engine(tmpd, db=args.backend)
        api = Api(eng.port)
        print(
            f"engine {eng.url} ({args.backend or 'sqlite, temporary file'}); "
            f"{args.runs} sequential runs, batch of {args.batch}"
        )
        try:
            for n in (1, 2):
                queue = f"bench{n}"
                workers = [Worker(script, eng.url, tmpd, queue=queue) for _ in range(n)]
                for w in workers:
                    w.wait_ready()
                try:
                    lat, rate = measure(api, queue, args.runs, args.batch)
                finally:
                    for w in workers:
                        w.stop()
                print(
                    f"{n} worker{'s' if n > 1 else ' '}: latency p50 {statistics.median(lat) * 1000:6.1f} ms  "
                    f"p95 {pct(lat, 95) * 1000:6.1f} ms   throughput {rate:6.1f} workflows/s"
                )
        finally:
            eng.stop()


if __name__ == "__main__":
    main()
