"""The floor under every engine request: one HTTP round trip on bare bottle + waitress, and one SQLite
commit with synchronous=FULL, on this machine.

A workflow's latency is a chain of sequential requests (each a round trip, most a durable commit), so
these two figures bound what any design on this stack can reach. Prints, for N sequential requests over
one keep-alive connection (http.client, as the harness's clients use):

    bare       POST /echo with a 300-byte JSON body on bottle + waitress (threads=8, nothing else)
    assay      GET /api/v1/health and GET /api/v1/workflows/{id} on `assay serve` (SQLite), for comparison
    commit     BEGIN IMMEDIATE; INSERT; COMMIT on a WAL SQLite file with synchronous=FULL (in-process)

p50 / p95 in ms, plus the server process's CPU per request (utime+stime from /proc).

    .venv/bin/python bench/http_floor.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BARE = """
import sys, bottle, waitress
app = bottle.Bottle()
@app.post("/echo")
def echo():
    body = bottle.request.json
    bottle.response.content_type = "application/json"
    import json
    return json.dumps({"ok": True, "n": len(body or {})})
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def round_trips(port: int, method: str, path: str, body: bytes | None, n: int, pid: int) -> tuple:
    c = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    for _ in range(50):  # warm-up
        c.request(method, path, body=body, headers=headers)
        c.getresponse().read()
    times = []
    c0 = cpu_s(pid)
    for _ in range(n):
        t = time.perf_counter()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, r.status  # noqa: S101 - a bench sanity check
    cpu = (cpu_s(pid) - c0) / n * 1000
    c.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1], cpu


def commits(n: int) -> tuple:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "c.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (x)")
        times = []
        for i in range(n):
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
            times.append((time.perf_counter() - t) * 1000)
        conn.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    n = args.requests
    body = json.dumps({"k": "v" * 280}).encode()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bare.py"
        script.write_text(BARE)
        port = free_port()
        bare = subprocess.Popen([sys.executable, str(script), str(port)])
        try:
            wait_port(port)
            rows.append(
                ("bare bottle+waitress POST /echo", *round_trips(port, "POST", "/echo", body, n, bare.pid))
            )
        finally:
            bare.terminate()
            bare.wait(10)
        import engine_cpu

        proc, port = engine_cpu.start_engine(tmp, None, None)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request(
                "POST",
                "/api/v1/workflows",
                body=json.dumps({"workflow_type": "T", "workflow_id": "floor", "task_queue": "q"}),
                headers={"Content-Type": "application/json"},
            )
            c.getresponse().read()
            c.close()
            rows.append(
                ("assay GET /api/v1/health", *round_trips(port, "GET", "/api/v1/health", None, n, proc.pid))
            )
            rows.append(
                (
                    "assay GET /api/v1/workflows/{id}",
                    *round_trips(port, "GET", "/api/v1/workflows/floor", None, n, proc.pid),
                )
            )
        finally:
            proc.terminate()
            proc.wait(10)
    p50, p95 = commits(min(n, 1000))
    print(f"{'':36} {'p50 ms':>8} {'p95 ms':>8} {'server CPU ms/req':>18}")
    for name, a, b, cpu in rows:
        print(f"{name:36} {a:8.3f} {b:8.3f} {cpu:18.3f}")
    print(f"{'SQLite commit, WAL, synchronous=FULL':36} {p50:8.3f} {p95:8.3f}")


if __name__ == "__main__":
    main()
