"""The CPU cost of metrics: one process, no sockets, the same workload through the WSGI app with
ASSAY_METRICS on and off, in alternating rounds (a shared, noisy machine moves wall-clock figures by far
more than the hooks cost; process CPU time per workflow is steadier).

Each workflow: start, workflow task, ScheduleActivity, activity claim + complete, workflow task,
CompleteWorkflow, i.e. 7 API requests and the engine hooks they trigger.

Run by hand:  .venv/bin/python bench/metrics_overhead.py [--workflows 300] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assay.api import make_app  # noqa: E402
from assay.config import load_settings  # noqa: E402
from assay.engine import Engine  # noqa: E402
from assay.store import open_store  # noqa: E402
from tests.wsgi import Client  # noqa: E402


def run(n: int, metrics: bool, tmp: str, tag: str) -> float:
    """CPU seconds per workflow."""
    env = {"ASSAY_METRICS": "1" if metrics else "0", "ASSAY_SQLITE_SYNCHRONOUS": "NORMAL"}
    settings = load_settings({"backend": "sqlite::memory:"}, environ=env)
    store = open_store(f"sqlite:///{tmp}/{tag}.db", synchronous="OFF")
    engine = Engine(store, settings=settings)
    api = Client(make_app(engine), prefix="/api/v1")
    wid = api.post("/workers/register", {"identity": "b", "queue": "q"}).json["worker_id"]
    poll = {"queue": "q", "worker_id": wid}
    t0 = time.process_time()
    for i in range(n):
        api.post("/workflows", {"workflow_type": "B", "workflow_id": f"{tag}-{i}", "task_queue": "q"})
        t = api.post("/workflow-tasks/poll", poll).json
        cmd = {"type": "ScheduleActivity", "seq": 1, "name": "a"}
        api.post(f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": wid, "commands": [cmd]})
        a = api.post("/tasks/poll", poll).json
        api.post(f"/tasks/{a['id']}/complete", {"result": 1, "worker_id": wid})
        t = api.post("/workflow-tasks/poll", poll).json
        done = {"type": "CompleteWorkflow", "result": 1}
        api.post(f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": wid, "commands": [done]})
    cpu = (time.process_time() - t0) / n
    if metrics:
        engine.metrics.exposition()  # one scrape, as Prometheus would (not timed)
    engine.notifier.close()
    store.close()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        run(50, True, tmp, "warm")
        for r in range(args.rounds):
            for metrics in (r % 2 == 0, r % 2 == 1):  # alternate which goes first
                (on if metrics else off).append(run(args.workflows, metrics, tmp, f"r{r}-{int(metrics)}"))
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"metrics on : {m_on * 1000:.3f} ms CPU per workflow (median of {len(on)} rounds)")
    print(f"metrics off: {m_off * 1000:.3f} ms CPU per workflow (median of {len(off)} rounds)")
    print(f"overhead   : {(m_on / m_off - 1) * 100:+.1f}% CPU; throughput ratio on/off {m_off / m_on:.3f}")


if __name__ == "__main__":
    main()
