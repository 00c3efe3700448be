"""Benchmark: workflows/s and end-to-end latency on Postgres with 1 and 2 engine instances, beside SQLite.

Each workflow runs one activity; raw-HTTP workers (threads, long-polling POST /poll) do the work.
Run by hand:  .venv/bin/python bench/postgres.py [--workflows 300] [--workers 4]
Needs PostgreSQL server binaries (initdb, pg_ctl) or ASSAY_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import pg  # noqa: E402
from tests.helpers import http, start_engine, wait_until  # noqa: E402
from tests.workerkit import RawWorker  # noqa: E402


def run(label: str, dbs: list[str], n: int, workers_per_engine: int, tmp: Path) -> None:
    engines = []
    for i, db in enumerate(dbs):
        d = tmp / f"{label}-{i}"
        d.mkdir()
        engines.append(start_engine(d, db=db))
    workers = [RawWorker(e.api, with_activity=True) for e in engines for _ in range(workers_per_engine)]
    for w in workers:
        w.__enter__()
    try:
        t0 = time.perf_counter()

        def start(e, lo, hi):
            for j in range(lo, hi):
                http(
                    "POST",
                    e.api + "/workflows",
                    {"workflow_type": "B", "workflow_id": f"{label.replace(' ', '-')}-{j}"},
                )

        per = n // len(engines)
        ts = [threading.Thread(target=start, args=(e, k * per, (k + 1) * per)) for k, e in enumerate(engines)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        total = per * len(engines)
        wait_until(lambda: sum(len(w.completed) for w in workers) >= total, timeout=600, interval=0.05)
        elapsed = time.perf_counter() - t0
        st, rows, _ = http("GET", engines[0].api + "/workflows?status=COMPLETED&limit=1000")
        lat = sorted((r["completed_at"] - r["created_at"]) * 1000 for r in rows)
        print(
            f"{label:<22} {total / elapsed:8.1f} wf/s   latency p50 {statistics.median(lat):7.1f} ms   "
            f"p95 {lat[int(0.95 * (len(lat) - 1))]:7.1f} ms   ({total} workflows, "
            f"{len(workers)} workers, {len(engines)} engine(s))"
        )
    finally:
        for w in workers:
            w.__exit__(None, None, None)
        for e in engines:
            e.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=300)
    ap.add_argument("--workers", type=int, default=4, help="worker threads in all")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpp = Path(tmp)
        run("sqlite x1", [str(tmpp / "s.db")], a.workflows, a.workers, tmpp)
        if not pg.available():
            print("postgres: skipped (no server binaries)")
            return
        run("postgres x1", [pg.fresh_database()], a.workflows, a.workers, tmpp)
        url = pg.fresh_database()
        run("postgres x2", [url, url], a.workflows, a.workers // 2, tmpp)


if __name__ == "__main__":
    main()
