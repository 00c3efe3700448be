"""Idle workers: N simulated workers long-polling an idle engine; engine CPU and /health latency meanwhile.

Each simulated worker is one keep-alive HTTP connection from this process (a selector loop, no thread per
worker) that registers, then polls `POST /api/v1/poll {"wait_secs": W, "retry_after": true}` forever:
on an empty answer it polls again at once, or after `retry_after` seconds when the answer carries it
(`--ignore-retry-after`: an upstream-shaped client that never sends the opt-in nor reads the field).
The first polls are spread over one wait (workers started at different times), so the polls do not end
in one wave. After a warm-up (one wait and 2 s: every poller in its steady rhythm), the engine's CPU (utime+stime from /proc/PID/stat) is taken over a window while another
thread times `GET /health` every 100 ms (`--health-every S`; the timing costs the engine about 0.5% of a
core per instance at 100 ms: a slower one gives a truer idle baseline).

    .venv/bin/python bench/idle.py [--workers 50,200,1000] [--window 20] [--wait 50] [--postgres]
                                   [--ignore-retry-after] [--heartbeat 5] [--health-every 1]
                                   [--engine-arg=--threads=64 ...]

`--heartbeat S`: each worker also sends `POST /workers/heartbeat` every S seconds (on 4 shared connections
per instance), as the bundled Lua and Python workers do every ASSAY_WORKER_HEARTBEAT_SECS (5) even when idle.

With --postgres: two engine instances on one throwaway database (tests/pg.py), the workers split between
them; CPU is the sum of both instances. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid: int) -> float:
    """utime + stime of a process, in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Poller:
    """One simulated worker: a socket and a tiny HTTP/1.1 response parser."""

    def __init__(self, port: int, worker_id: str, body: bytes) -> None:
        self.port = port
        self.worker_id = worker_id
        self.request = (
            b"POST /api/v1/poll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.sock: socket.socket | None = None
        self.buf = b""
        self.next_at = 0.0
        self.polls = 0
        self.retry_afters = 0

    def connect(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        self.sock = s

    def send(self) -> None:
        assert self.sock is not None
        self.sock.sendall(self.request)  # small: fits the socket buffer
        self.polls += 1

    def feed(self, data: bytes) -> dict | None | bool:
        """Add bytes; returns the parsed JSON body once a whole response is in (False: not yet)."""
        self.buf += data
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if len(rest) < length:
            return False
        body, self.buf = rest[:length], rest[length:]
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"poll: {head.splitlines()[0]!r}")
        return json.loads(body) if body else None


def register(port: int, n: int, offset: int) -> list[str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ids = []
    for i in range(n):
        body = json.dumps({"identity": f"idle-{offset + i}", "queue": "idle", "activities": ["a"]})
        c.request("POST", "/api/v1/workers/register", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        ids.append(json.loads(r.read())["worker_id"])
    c.close()
    return ids


def run_pollers(pollers: list[Poller], stop: threading.Event, honour: bool, spread: float) -> None:
    """Connect every poller, send each one's first poll at a random time within `spread` seconds (workers
    that started at different times: their polls do not end together), then poll forever."""
    sel = selectors.DefaultSelector()
    rng = random.Random(17)
    t0 = time.monotonic()
    for p in pollers:
        p.connect()
        assert p.sock is not None
        sel.register(p.sock, selectors.EVENT_READ, p)
        p.next_at = t0 + rng.uniform(0, spread)
    waiting: list[Poller] = list(pollers)
    while not stop.is_set():
        now = time.monotonic()
        if waiting:
            due = [p for p in waiting if p.next_at <= now]
            if due:
                waiting = [p for p in waiting if p.next_at > now]
                for p in due:
                    p.send()
        for key, _ in sel.select(timeout=0.1):
            p = key.data
            try:
                data = p.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit(f"engine closed the connection of {p.worker_id}")
            got = p.feed(data)
            if got is False:
                continue
            ra = got.get("retry_after") if isinstance(got, dict) else None
            if ra:
                p.retry_afters += 1
            if honour and ra:
                p.next_at = time.monotonic() + float(ra)
                waiting.append(p)
            else:
                p.send()
    for p in pollers:
        if p.sock is not None:
            p.sock.close()


def heartbeats(port: int, ids: list[str], every: float, stop: threading.Event, sent: list[int]) -> None:
    """`POST /workers/heartbeat` for each of `ids` once every `every` seconds, spread evenly (the bundled
    workers send one on their own connection every ASSAY_WORKER_HEARTBEAT_SECS, idle or not)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    gap = every / max(1, len(ids))
    at = time.monotonic() + random.Random(port).uniform(0, gap)
    i = 0
    while not stop.is_set():
        now = time.monotonic()
        if at > now:
            stop.wait(at - now)
            continue
        body = json.dumps({"worker_id": ids[i % len(ids)]})
        conn.request(
            "POST", "/api/v1/workers/heartbeat", body=body, headers={"Content-Type": "application/json"}
        )
        conn.getresponse().read()
        sent[0] += 1
        i += 1
        at += gap


def health_times(ports: list[int], stop: threading.Event, out: list[float], every: float = 0.1) -> None:
    """GET /health every `every` s (round robin over the instances); a timed-out call counts as 10 s."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for port in ports]
    i = 0
    while not stop.is_set():
        k = i % len(conns)
        i += 1
        t = time.perf_counter()
        try:
            conns[k].request("GET", "/api/v1/health")
            conns[k].getresponse().read()
            out.append((time.perf_counter() - t) * 1000)
        except OSError:
            out.append(10_000.0)
            conns[k].close()
        stop.wait(every)


def measure(
    engines,
    n: int,
    window: float,
    wait: float,
    honour: bool,
    warmup: float | None,
    heartbeat: float = 0.0,
    health_every: float = 0.1,
) -> dict:
    ports = [e.port for e in engines]
    pollers: list[Poller] = []
    stop = threading.Event()
    beats = [0]
    beaters: list[threading.Thread] = []
    for k, port in enumerate(ports):
        share = n // len(ports) + (1 if k < n % len(ports) else 0)
        ids = register(port, share, k * n)
        if heartbeat > 0:
            for part in (ids[j::4] for j in range(4)):  # 4 connections per instance
                if part:
                    b = threading.Thread(
                        target=heartbeats, args=(port, part, heartbeat, stop, beats), daemon=True
                    )
                    beaters.append(b)
        for wid in ids:
            body: dict = {"queue": "idle", "worker_id": wid, "wait_secs": wait}
            if honour:
                body["retry_after"] = True
            pollers.append(Poller(port, wid, json.dumps(body).encode()))
    for b in beaters:
        b.start()
    t = threading.Thread(target=run_pollers, args=(pollers, stop, honour, wait), daemon=True)
    t.start()
    time.sleep(wait + 2 if warmup is None else warmup)  # by then every poller is in its steady rhythm
    lat: list[float] = []
    hstop = threading.Event()
    h = threading.Thread(target=health_times, args=(ports, hstop, lat, health_every), daemon=True)
    polls0 = sum(p.polls for p in pollers)
    beats0 = beats[0]
    c0 = sum(cpu_secs(e.proc.pid) for e in engines)
    t0 = time.monotonic()
    h.start()
    time.sleep(window)
    hstop.set()
    h.join()
    c1 = sum(cpu_secs(e.proc.pid) for e in engines)
    t1 = time.monotonic()
    polls1 = sum(p.polls for p in pollers)
    beats1 = beats[0]
    stop.set()
    t.join(timeout=10)
    lat.sort()
    return {
        "n": n,
        "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
        "polls_s": (polls1 - polls0) / (t1 - t0),
        "beats_s": (beats1 - beats0) / (t1 - t0),
        "retry_afters": sum(p.retry_afters for p in pollers),
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * (len(lat) - 1))],
    }


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'workers':>7} {'engine CPU %':>12} {'polls/s':>8} {'beats/s':>8} {'retry_after':>11} {'health p50':>10}"
        f" {'p95 ms':>7}  ok"
    )
    for r in rows:
        ok = r["cpu_pct"] <= 5 and r["p95"] <= 10
        print(
            f"{r['n']:7d} {r['cpu_pct']:12.1f} {r['polls_s']:8.1f} {r['beats_s']:8.1f} {r['retry_afters']:11d}"
            f" {r['p50']:10.1f}"
            f" {r['p95']:7.1f}"
            f"  {'yes' if ok else 'NO'}"
        )


def run(
    counts: list[int],
    *,
    window: float,
    wait: float,
    honour: bool,
    postgres: bool,
    engine_args: list[str],
    warmup: float | None = None,
    heartbeat: float = 0.0,
    keep: str | None = None,
    env: dict[str, str] | None = None,
    health_every: float = 0.1,
) -> None:
    from tests.helpers import start_engine

    with tempfile.TemporaryDirectory(dir=keep) as d:
        rows = []
        for n in counts:
            if postgres:
                from tests import pg

                url = pg.fresh_database()
                engines = [
                    start_engine(Path(d), db=url, extra_args=engine_args, env=env, timeout=60)
                    for _ in range(2)
                ]
            else:
                db = str(Path(d) / f"idle-{n}.db")
                engines = [start_engine(Path(d), db=db, extra_args=engine_args, env=env)]
            try:
                rows.append(measure(engines, n, window, wait, honour, warmup, heartbeat, health_every))
            finally:
                for e in engines:
                    e.stop()
        kind = "Postgres, 2 instances" if postgres else "SQLite"
        who = "honouring retry_after" if honour else "ignoring retry_after (upstream-shaped)"
        extra = " ".join([*engine_args, *(f"{k}={v}" for k, v in (env or {}).items())])
        title = f"idle workers, {kind}, wait_secs={wait:g}, {who}, window {window:g} s"
        if heartbeat > 0:
            title += f", a worker heartbeat every {heartbeat:g} s"
        print_rows(title + (f", engine: {extra}" if extra else ""), rows)


def default_wait() -> float:
    """The bundled workers' poll wait (ASSAY_WORKER_POLL_WAIT_SECS's declared default)."""
    from assay.config import WorkerSettings, declared

    return float(declared(WorkerSettings)["poll_wait_secs"].default)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="50,200,1000")
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument(
        "--warmup", type=float, default=None, help="seconds before the window (default: wait + 2)"
    )
    ap.add_argument(
        "--wait", type=float, default=default_wait(), help="wait_secs of each poll (default: the workers')"
    )
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument(
        "--heartbeat", type=float, default=0.0, help="each worker's POST /workers/heartbeat period (0: none)"
    )
    ap.add_argument(
        "--health-every",
        type=float,
        default=0.1,
        help="seconds between timed GET /health calls (default 0.1)",
    )
    ap.add_argument("--ignore-retry-after", action="store_true")
    ap.add_argument("--engine-arg", action="append", default=[], help="extra `assay serve` argument")
    ap.add_argument("--engine-env", action="append", default=[], help="NAME=VALUE for the engine")
    ap.add_argument("--tmp", default=None, help="parent folder of the run's files (engine logs)")
    a = ap.parse_args()
    run(
        [int(x) for x in a.workers.split(",")],
        window=a.window,
        wait=a.wait,
        honour=not a.ignore_retry_after,
        postgres=a.postgres,
        engine_args=a.engine_arg,
        warmup=a.warmup,
        heartbeat=a.heartbeat,
        keep=a.tmp,
        env=dict(kv.split("=", 1) for kv in a.engine_env),
        health_every=a.health_every,
    )


if __name__ == "__main__":
    main()
