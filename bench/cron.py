"""Benchmark: N schedules firing every second for D seconds on a real engine; reports fire delay and misses.

Run by hand:  .venv/bin/python bench/cron.py [--schedules 50] [--seconds 60]
Goal: p99 fire delay under 100 ms, 0 missed fires.
"""

from __future__ import annotations

import argparse
import calendar
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import http, start_engine  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        eng = start_engine(Path(tmp))
        try:
            for i in range(a.schedules):
                st, body, _ = http(
                    "POST",
                    eng.api + "/schedules",
                    {
                        "name": f"b{i:03d}",
                        "workflow_type": "Bench",
                        "cron_expr": "* * * * * *",
                        "overlap_policy": "allow_all",
                    },
                )
                assert st == 201, body
            start = time.time()
            time.sleep(a.seconds)
            end = time.time()
            http("POST", eng.api + "/schedules/b000/pause")
            for i in range(a.schedules):
                http("POST", eng.api + f"/schedules/b{i:03d}/pause")
            delays, per_sched = [], {}
            for i in range(a.schedules):
                name = f"b{i:03d}"
                q = urllib.parse.quote(json.dumps({"schedule": name}))
                st, rows, _ = http("GET", eng.api + f"/workflows?limit=1000&search_attrs={q}")
                dues = []
                for r in rows:
                    due = calendar.timegm(time.strptime(r["id"].split("-", 1)[1][:16], "%Y%m%dT%H%M%SZ"))
                    dues.append(due)
                    delays.append((r["created_at"] - due) * 1000)
                per_sched[name] = sorted(dues)
            expected = 0
            missed = 0
            for dues in per_sched.values():
                window = [d for d in range(int(start) + 2, int(end) - 1)]
                expected += len(window)
                missed += len(set(window) - set(dues))
            print(f"schedules={a.schedules} seconds={a.seconds} fires={len(delays)} expected~{expected}")
            print(
                f"fire delay ms: p50={pct(delays, 50):.1f} p99={pct(delays, 99):.1f} max={max(delays):.1f} "
                f"mean={statistics.mean(delays):.1f}"
            )
            print(f"missed fires: {missed}")
        finally:
            eng.stop()


if __name__ == "__main__":
    main()
