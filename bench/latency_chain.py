"""Where the start -> COMPLETED latency of a 1-activity workflow goes, request by request.

Starts `assay serve` (SQLite, synchronous=FULL) in a child process whose WSGI entry point stamps every
request (method, path, time in, time the app returned its body) and every after-commit effect batch on the
system-wide monotonic clock, plus 2 `assay run` Lua worker processes (the shared harness's worker script),
and an SSE reader in this process (completion is seen on the stream, as `assay workflow wait` sees it).
Workflows are started one at a time, 20 ms apart (each finds the workers idle, as in the harness).

Per workflow it lines up, relative to the client's start request: each engine request's arrival and answer,
the commits that published SSE events, and the moment the SSE frame of the completion was read. It prints
the median of each step over all samples, so the gaps (network + worker time between requests, SSE
delivery) can be read off.

    .venv/bin/python bench/latency_chain.py [--workflows 100] [--workers 2] [--phases] [--skip 20]

`--phases` also breaks each request's CPU down: the thread CPU spent inside a set of engine functions
(PHASES, inclusive: a nested one counts in both) and per SQL statement, median per request kind (a held
poll apart). `--skip N` leaves the first N requests of each kind out of that table: the HTTP pool hands
requests to its 64 threads in turn, so the first ones pay for warming each thread.
`CHAIN_PROFILE=FILE CHAIN_PROFILE_PATH=/poll` (environment): a cProfile (thread CPU, not wall time) of the
requests whose path ends so.
"""

from __future__ import annotations

import argparse
import http.client
import json
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
sys.path.insert(0, str(ROOT / "bench"))

import engine_cpu  # noqa: E402
from engine_cpu import Conn  # noqa: E402

QUEUE = "chain"
WORKER_LUA = """
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
workflow.define("Bench", function(ctx, input)
    local last = ctx:execute_activity("bench_act", { i = input.i, k = 1 }, { task_queue = "QUEUE" })
    return { i = input.i, last = last }
end)
workflow.activity("bench_act", function(actx, input)
    return { i = input.i, k = input.k, ok = true }
end)
workflow.listen({ queue = "QUEUE", identity = "chain-lua" })
""".replace("QUEUE", QUEUE)


#: (module, class or None, function) whose inclusive thread CPU `--phases` reports per request
PHASES = [
    ("assay.api.http", None, "read_body"),
    ("assay.api.http", None, "json_response"),
    ("assay.records", None, "workflow_task"),
    ("assay.records", None, "activity"),
    ("assay.engine.dispatch", "DispatchOps", "claim_tasks"),
    ("assay.engine.dispatch", "DispatchOps", "load_histories"),
    ("assay.engine.dispatch", "DispatchOps", "_hand_over"),
    ("assay.engine.dispatch", "DispatchOps", "_prepare"),
    ("assay.engine.notify", "Notifier", "wait"),
    ("assay.engine.notify", "Effects", "flush"),
    ("assay.engine.notify", "Broadcaster", "publish"),
    ("assay.store.sqlite", "SqliteStore", "_begin"),
    ("assay.store.sqlite", "SqliteStore", "_flush"),
    ("assay.store.sqlite", "SqliteStore", "_take_reader"),
    ("assay.store.sql.core", "SqlBase", "_decode"),
]


class Phases:
    """Inclusive thread CPU (ms) and calls of PHASES and of each SQL statement, per request (thread)."""

    def __init__(self) -> None:
        import importlib

        self.local = threading.local()
        for mod, cls, attr in PHASES:
            m = importlib.import_module(mod)
            owner = getattr(m, cls) if cls else m
            if attr not in vars(owner):
                continue  # (not in this version of the engine)
            orig = vars(owner)[attr]
            new = self.wrap(f"{cls or mod.rsplit('.', 1)[-1]}.{attr}", orig)
            setattr(owner, attr, new)
            if cls is None:  # also where it was imported by name
                for mm in list(sys.modules.values()):
                    if getattr(mm, "__name__", "").startswith("assay") and getattr(mm, attr, None) is orig:
                        setattr(mm, attr, new)
        from assay.store.sql import core

        exec_sql = core.SqlBase._exec

        def _exec(tx, sql, params=()):  # type: ignore[no-untyped-def]
            return self.timed("SQL " + " ".join(sql.split())[:60], exec_sql, tx, sql, params)

        core.SqlBase._exec = _exec  # type: ignore[method-assign]

    def timed(self, name, fn, *a, **kw):  # type: ignore[no-untyped-def]
        acc = getattr(self.local, "acc", None)
        if acc is None:
            return fn(*a, **kw)
        t = time.thread_time_ns()
        try:
            return fn(*a, **kw)
        finally:
            v = acc.setdefault(name, [0.0, 0])
            v[0] += (time.thread_time_ns() - t) / 1e6
            v[1] += 1

    def wrap(self, name, fn):  # type: ignore[no-untyped-def]
        def w(*a, **kw):  # type: ignore[no-untyped-def]
            return self.timed(name, fn, *a, **kw)

        return w

    def begin(self) -> None:
        self.local.acc = {}

    def end(self) -> dict:
        acc, self.local.acc = getattr(self.local, "acc", None) or {}, None
        return acc


def serve_stamped(stamp_file: str, argv: list[str]) -> None:
    """`assay serve` that writes one line per request and per after-commit effect batch to `stamp_file`."""
    from assay import server
    from assay.engine import notify

    out = open(stamp_file, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    lock = threading.Lock()
    app = server.Server._application

    phases = Phases() if os.environ.get("CHAIN_PHASES") else None

    def stamped_app(self, environ, start_response):  # type: ignore[no-untyped-def]
        t_in, c_in = time.monotonic(), time.thread_time()
        if phases is not None:
            phases.begin()
        if prof is not None and environ.get("PATH_INFO", "").endswith(prof_path):
            prof.enable()
            try:
                body = list(app(self, environ, start_response))
            finally:
                prof.disable()
                prof.dump_stats(os.environ["CHAIN_PROFILE"])
        else:
            body = app(self, environ, start_response)
        path = environ.get("PATH_INFO", "")
        if path.endswith("/events/stream"):
            return body
        body = list(body)
        t_out, cpu = time.monotonic(), time.thread_time() - c_in
        extra = "" if phases is None else " " + json.dumps(phases.end(), separators=(",", ":"))
        with lock:
            out.write(f"R {t_in!r} {t_out!r} {environ.get('REQUEST_METHOD')} {path} {cpu!r}{extra}\n")
        return body

    flush = notify.Effects.flush
    prof = None
    prof_path = os.environ.get("CHAIN_PROFILE_PATH", "/workflows")
    if os.environ.get("CHAIN_PROFILE"):
        import cProfile

        prof = cProfile.Profile(time.thread_time_ns, 1e-9)  # CPU of the request's thread, not its waits

    def stamped_flush(self, notifier, broadcaster) -> None:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        kinds = ",".join(str(e[0]) for e in self.events) or "-"
        with lock:
            out.write(f"C {now!r} {kinds}\n")
        flush(self, notifier, broadcaster)

    server.Server._application = stamped_app  # type: ignore[method-assign]
    notify.Effects.flush = stamped_flush  # type: ignore[method-assign]
    from assay.cli import main as cli_main

    cli_main(["serve", *argv])


class Sse:
    def __init__(self, port: int) -> None:
        self.done: dict[str, float] = {}
        self.cond = threading.Condition()
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/api/v1/events/stream", headers={"Accept": "text/event-stream"})
        self.resp = c.getresponse()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        ev = None
        while True:
            line = self.resp.readline()
            if not line:
                return
            s = line.decode().rstrip("\r\n")
            if s.startswith("event:"):
                ev = s[6:].strip()
            elif s.startswith("data:") and ev == "workflow_completed":
                t = time.monotonic()
                wid = json.loads(s[5:]).get("workflow_id")
                with self.cond:
                    self.done[wid] = t
                    self.cond.notify_all()

    def wait(self, wid: str, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while wid not in self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"{wid} not completed within {timeout} s")
                self.cond.wait(left)
            return self.done[wid]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve_stamped(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflows", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--show", type=int, default=0, help="also print every request of the first N samples")
    ap.add_argument("--phases", action="store_true", help="break each request's CPU down (see above)")
    ap.add_argument("--skip", type=int, default=20, help="--phases: leave the first N requests of a kind out")
    args = ap.parse_args()
    if args.phases:
        os.environ["CHAIN_PHASES"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        stamp_file = str(Path(tmp) / "stamps.txt")
        proc, port = engine_cpu.start_engine(tmp, None, None, [__file__, "_serve", stamp_file])
        script = Path(tmp) / "worker.lua"
        script.write_text(WORKER_LUA)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
        env["ASSAY_ENGINE_URL"] = f"http://127.0.0.1:{port}"
        workers = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "assay.py"), "run", str(script)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        try:
            sse = Sse(port)
            c = Conn(port)
            samples: list[tuple[str, float, float]] = []
            for i in range(-5, args.workflows):
                wid = f"chain-{i + 5}"
                t0 = time.monotonic()
                st, _ = c.call(
                    "POST",
                    "/workflows",
                    {"workflow_type": "Bench", "workflow_id": wid, "task_queue": QUEUE, "input": {"i": i}},
                )
                if st not in (200, 201):
                    raise SystemExit(f"start: HTTP {st}")
                t1 = sse.wait(wid, 30.0)
                if i >= 0:
                    samples.append((wid, t0, t1))
                time.sleep(args.gap_ms / 1000)
        finally:
            for w in workers:
                w.terminate()
            proc.terminate()
            for w in workers:
                w.wait(10)
            proc.wait(10)
        report(stamp_file, samples, args.show)
        if args.phases:
            report_phases(stamp_file, args.skip)


def report(stamp_file: str, samples: list[tuple[str, float, float]], show: int = 0) -> None:
    reqs: list[tuple[float, float, str, float]] = []
    commits: list[tuple[float, str]] = []
    for line in Path(stamp_file).read_text().splitlines():
        parts = line.split()
        if parts[0] == "R":
            reqs.append((float(parts[1]), float(parts[2]), f"{parts[3]} {parts[4]}", float(parts[5])))
        else:
            commits.append((float(parts[1]), parts[2]))
    for _wid, t0, t1 in samples[:show]:
        print(f"sample: {(t1 - t0) * 1000:.2f} ms")
        for tin, tout, what, cpu in sorted(r for r in reqs if r[1] >= t0 and r[0] <= t1 + 0.005):
            print(
                f"  in {(tin - t0) * 1000:8.2f}  out {(tout - t0) * 1000:8.2f}  cpu {cpu * 1000:5.2f}  {what}"
            )
    steps: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    totals = []
    for _wid, t0, t1 in samples:
        totals.append((t1 - t0) * 1000)
        n = 0
        for tin, tout, what, cpu in sorted(r for r in reqs if t0 <= r[1] <= t1):
            if "/heartbeat" in what:
                continue
            if tin < t0:  # a poll held before the start, answered by it
                steps.setdefault(f"0. held {what.split(' ')[1]} answered", []).append((tout - t0) * 1000)
                cpus.setdefault(f"0. held {what.split(' ')[1]}", []).append(cpu * 1000)
                continue
            n += 1
            name = what.split(" ")[1]
            for key in ("workflows", "commands", "complete", "results"):
                if name.endswith(key):
                    name = key
            steps.setdefault(f"{n}. {name} in", []).append((tin - t0) * 1000)
            steps.setdefault(f"{n}. {name} out", []).append((tout - t0) * 1000)
            cpus.setdefault(f"{n}. {name}", []).append(cpu * 1000)
        last_commit = max((c for c in commits if t0 <= c[0] <= t1 and "completed" in c[1]), default=None)
        if last_commit:
            steps.setdefault("z. completing commit", []).append((last_commit[0] - t0) * 1000)
            steps.setdefault("z. SSE frame read by client", []).append((t1 - t0) * 1000)
    print(
        f"{len(samples)} workflows; total start -> completed seen: p50 {statistics.median(totals):.2f} ms, "
        f"p95 {sorted(totals)[int(0.95 * len(totals)) - 1]:.2f} ms"
    )
    print("median ms after the client sent the start request (requests other than polls, in order):")
    for k in sorted(steps, key=lambda k: (statistics.median(steps[k]), k)):
        v = steps[k]
        print(f"  {statistics.median(v):7.2f}  {k}  (n={len(v)})")
    print("median CPU ms of the request's thread inside the app:")
    for k in sorted(cpus):
        print(f"  {statistics.median(cpus[k]):7.3f}  {k}")


def report_phases(stamp_file: str, skip: int) -> None:
    """Median inclusive CPU (ms) and calls of each phase, per request kind (a poll that waited apart)."""
    kinds: dict[str, list[tuple[float, dict]]] = {}
    for line in Path(stamp_file).read_text().splitlines():
        parts = line.split(" ", 6)
        if parts[0] != "R" or len(parts) < 7:
            continue
        acc = json.loads(parts[6])
        kind = parts[4].rsplit("/", 1)[-1]
        if kind == "poll":
            kind = "poll (held)" if "Notifier.wait" in acc else "poll (not held)"
        kinds.setdefault(kind, []).append((float(parts[5]) * 1000, acc))
    print(f"median CPU ms per phase (inclusive), first {skip} requests of each kind left out:")
    for kind, rows in sorted(kinds.items()):
        rows = rows[skip:]
        if not rows or kind in ("health", "register"):
            continue
        print(f"  {kind}: n={len(rows)}, request {statistics.median(r[0] for r in rows):.3f}")
        for name in sorted({k for _, acc in rows for k in acc}):
            ms = statistics.median(acc.get(name, [0.0, 0])[0] for _, acc in rows)
            calls = statistics.median(acc.get(name, [0.0, 0])[1] for _, acc in rows)
            if calls:
                print(f"    {ms:7.3f}  x{calls:<4g} {name}")


if __name__ == "__main__":
    main()
