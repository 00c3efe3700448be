"""Scale benchmark: a database of N workflows (default 1,000,000), then p50/p95 of every list/filter/stat
read the API and dashboard offer, and bursts of starts.

Build: rows go straight in with bulk INSERTs in big transactions (the schema comes from the store's own
migrations, so triggers/side tables the store keeps are filled as well). Mix: 4 namespaces (main ~85%),
20 workflow types, 10 queues, mostly terminal statuses with ~1.5% live, search attributes
{"customer": "c<k>", "tier": gold|silver|bronze, "n": int} plus a rare {"vip": true} on 1 in 100,000;
one activity and `--events` events per workflow.

Reads go through the real app in-process (WSGI, no sockets). Bursts: `--burst` starts from 8 threads
against a real `assay serve` on a port (keep-alive HTTP connections), on an empty database and on the big one.

    .venv/bin/python bench/scale.py [--workflows 1000000] [--events 4] [--db /tmp/scale.db] [--reuse]
                                    [--reps 20] [--burst 5000] [--postgres] [--idle 50,200,1000]
                                    [--idle-only]

Idle workers: N pollers long-polling an idle engine (bench/idle.py; more options there).

Long histories: `--long-history N` (default 1,000; 0 skips) runs bench/long_history.py: one workflow of N
sequential activities, engine CPU and wall per step near step 10 and near step N, for a plain, a sticky and a
sticky+eager raw-HTTP worker.

`--reuse` keeps an existing database file of the right size (building 1M rows takes a few minutes).
`--postgres` builds the same rows in a throwaway Postgres cluster on loopback (tests/pg.py; COPY, triggers
off during the load, counters recounted after) and measures its reads and bursts beside SQLite's; with
`ASSAY_TEST_POSTGRES_URL` set, its server is used instead. `--pg-url` reuses a database built so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assay.protocol import EventType, WorkflowStatus  # noqa: E402

NAMESPACES = [("main", 85), ("billing", 10), ("ops", 4), ("tiny", 1)]
STATUSES = [
    (WorkflowStatus.COMPLETED, 8000),
    (WorkflowStatus.FAILED, 1000),
    (WorkflowStatus.CANCELLED, 400),
    (WorkflowStatus.TIMED_OUT, 450),
    (WorkflowStatus.RUNNING, 100),
    (WorkflowStatus.PENDING, 50),
]
TYPES = [f"Type{i:02d}" for i in range(20)]
QUEUES = [f"queue-{i}" for i in range(10)]
TIERS = ["gold", "silver", "bronze"]
T0 = 1_700_000_000.0
TERMINAL = {
    WorkflowStatus.COMPLETED,
    WorkflowStatus.FAILED,
    WorkflowStatus.CANCELLED,
    WorkflowStatus.TIMED_OUT,
}


def _weighted(pairs):
    out = []
    for v, w in pairs:
        out += [v] * w
    return out


def rows(n: int, n_events: int, seed: int = 7):
    """Yield (workflow row, activity row, event rows) for n workflows, oldest first."""
    rnd = random.Random(seed)
    ns_pool, st_pool = _weighted(NAMESPACES), _weighted(STATUSES)
    types = _weighted([(t, 20 - i) for i, t in enumerate(TYPES)])
    evs = [EventType.WorkflowStarted, EventType.ActivityScheduled, EventType.ActivityCompleted]
    for i in range(n):
        ns = rnd.choice(ns_pool)
        st = str(rnd.choice(st_pool))
        wtype = rnd.choice(types)
        queue = QUEUES[i % len(QUEUES)]
        created = T0 + i * 0.01
        attrs = {"customer": f"c{rnd.randrange(5000)}", "tier": rnd.choice(TIERS), "n": i % 1000}
        if i % 100_000 == 77:
            attrs["vip"] = True
        wid = f"wf-{i:08d}"
        live = st not in TERMINAL
        done = None if live else created + 5
        wf = (
            wid, ns, f"run-{i}", wtype, queue, st, json.dumps({"i": i}), None if live else '{"ok":true}',
            json.dumps(attrs, separators=(",", ":"), sort_keys=True), created, created + 5, done,
            1 if st == WorkflowStatus.PENDING else 0, created if st == WorkflowStatus.PENDING else None,
            n_events,
        )  # fmt: skip
        act = (wid, 1, "do_it", queue, "PENDING" if live else "COMPLETED", created + 1)
        ev = [(wid, s + 1, str(evs[min(s, 2)]), "{}", created + s) for s in range(n_events - 1)]
        final = {
            "COMPLETED": EventType.WorkflowCompleted,
            "FAILED": EventType.WorkflowFailed,
            "CANCELLED": EventType.WorkflowCancelled,
        }.get(st, EventType.ActivityCompleted)
        ev.append((wid, n_events, str(final), "{}", created + n_events))
        yield wf, act, ev


def build_sqlite(path: str, n: int, n_events: int) -> float:
    from assay.store import open_store

    t0 = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    open_store("sqlite:///" + path).close()  # schema via the store's migrations
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -200000")
    for ns, _ in NAMESPACES:
        conn.execute("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)", (ns, T0))
    wf_sql = """INSERT INTO workflows (id, namespace, run_id, workflow_type, task_queue, status, input, result,
        search_attributes, created_at, updated_at, completed_at, needs_dispatch, ready_at, last_seq)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"""
    act_sql = """INSERT INTO workflow_activities (workflow_id, seq, name, task_queue, status, scheduled_at)
        VALUES (?,?,?,?,?,?)"""
    ev_sql = (
        "INSERT INTO workflow_events (workflow_id, seq, event_type, payload, timestamp) VALUES (?,?,?,?,?)"
    )
    chunk = 50_000
    wfs, acts, evs = [], [], []

    def flush():
        conn.execute("BEGIN")
        conn.executemany(wf_sql, wfs)
        conn.executemany(act_sql, acts)
        conn.executemany(ev_sql, evs)
        conn.execute("COMMIT")
        wfs.clear(), acts.clear(), evs.clear()

    for k, (wf, act, ev) in enumerate(rows(n, n_events)):
        wfs.append(wf)
        acts.append(act)
        evs.extend(ev)
        if len(wfs) >= chunk:
            flush()
            print(f"  built {k + 1:,} workflows ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if wfs:
        flush()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def build_postgres(url: str, n: int, n_events: int) -> float:
    """COPY the same rows in, with triggers (foreign-key checks and counters) off for the load when the role
    may do so; the counters are then recounted from the rows, as the migration that made them does."""
    import psycopg

    from assay.store import open_store

    try:
        from assay.store.migrations import PG_RECOUNT
    except ImportError:  # a version without Postgres counters (measuring "before")
        PG_RECOUNT = []
    try:
        from assay.store.buckets import POSTGRES_RECOUNT as BUCKETS_RECOUNT
    except ImportError:  # a version without page buckets
        BUCKETS_RECOUNT = []
    t0 = time.perf_counter()
    open_store(url, min_size=1, max_size=2).close()
    with psycopg.connect(url, autocommit=False) as conn:
        try:
            conn.execute("SET session_replication_role = replica")  # superuser only: then triggers stay on
        except psycopg.Error:
            conn.rollback()
        for ns, _ in NAMESPACES:
            conn.execute(
                "INSERT INTO namespaces (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING", (ns, T0)
            )
        cols_wf = (
            "id, namespace, run_id, workflow_type, task_queue, status, input, result, search_attributes, "
            "created_at, updated_at, completed_at, needs_dispatch, ready_at, last_seq"
        )
        with conn.cursor() as cur:
            with cur.copy(f"COPY workflows ({cols_wf}) FROM STDIN") as cw:
                for wf, _, _ in rows(n, n_events):
                    cw.write_row(wf)
            print(f"  copied workflows ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            with cur.copy(
                "COPY workflow_activities (workflow_id, seq, name, task_queue, status, scheduled_at) FROM STDIN"
            ) as ca:
                for _, act, _ in rows(n, n_events):
                    ca.write_row(act)
            with cur.copy(
                "COPY workflow_events (workflow_id, seq, event_type, payload, timestamp) FROM STDIN"
            ) as ce:
                for _, _, ev in rows(n, n_events):
                    for e in ev:
                        ce.write_row(e)
            print(f"  copied activities and events ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            for stmt in PG_RECOUNT + BUCKETS_RECOUNT:
                cur.execute(stmt)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def reads(n: int) -> list[tuple[str, str]]:
    """(label, path) of every list/filter/stat read the API and dashboard offer."""
    sa = lambda d: quote(json.dumps(d))  # noqa: E731
    return [
        ("list newest", "/workflows?limit=50"),
        ("status=COMPLETED", "/workflows?status=COMPLETED&limit=50"),
        ("status=RUNNING", "/workflows?status=RUNNING&limit=50"),
        ("type", "/workflows?type=Type07&limit=50"),
        ("queue", "/workflows?task_queue=queue-3&limit=50"),
        ("status+type", "/workflows?status=FAILED&type=Type03&limit=50"),
        ("search match", "/workflows?limit=50&search_attrs=" + sa({"tier": "gold"})),
        ("search 2 keys", "/workflows?limit=50&search_attrs=" + sa({"customer": "c42", "tier": "gold"})),
        ("search rare", "/workflows?limit=50&search_attrs=" + sa({"vip": True})),
        ("search none", "/workflows?limit=50&search_attrs=" + sa({"customer": "nobody"})),
        ("deep offset", f"/workflows?limit=50&offset={int(n * 0.85 * 0.9)}"),
        ("mid offset (worst)", f"/workflows?limit=50&offset={int(n * 0.85 * 0.5)}"),
        ("status deep offset", f"/workflows?status=COMPLETED&limit=50&offset={int(n * 0.85 * 0.8 * 0.9)}"),
        ("type deep offset", f"/workflows?type=Type00&limit=50&offset={int(n * 0.85 * 20 / 210 * 0.9)}"),
        ("status mid offset", f"/workflows?status=COMPLETED&limit=50&offset={int(n * 0.85 * 0.8 * 0.5)}"),
        ("type mid offset", f"/workflows?type=Type00&limit=50&offset={int(n * 0.85 * 20 / 210 * 0.5)}"),
        ("queue deep offset", f"/workflows?task_queue=queue-3&limit=50&offset={int(n * 0.85 / 10 * 0.9)}"),
        ("queue mid offset", f"/workflows?task_queue=queue-3&limit=50&offset={int(n * 0.85 / 10 * 0.5)}"),
        (
            "search deep offset",
            f"/workflows?limit=50&offset={int(n * 0.85 / 3 * 0.9)}&search_attrs=" + sa({"tier": "gold"}),
        ),
        (
            "search mid offset",
            f"/workflows?limit=50&offset={int(n * 0.85 / 3 * 0.5)}&search_attrs=" + sa({"tier": "gold"}),
        ),
        ("deep cursor", "CURSOR"),
        ("GET /queues", "/queues"),
        ("GET /namespaces/main", "/namespaces/main"),
        ("describe", "/workflows/wf-00000123"),
    ]


def measure_reads(
    app, n: int, reps: int, only: str | None = None, server_cpu=None
) -> list[tuple[str, float, float, int, float]]:
    """(label, p50 ms, p95 ms, rows, CPU ms per read). CPU: this process (the engine runs in it) plus
    `server_cpu()` (Postgres server processes): unlike wall times, it does not grow with the machine's load."""
    from tests.wsgi import Client

    c = Client(app)
    out = []
    cursor_path = None
    r = c.get("/workflows", query={"limit": 50, "offset": int(n * 0.85 * 0.9)})
    nxt = r.headers.get("X-Next-Cursor")
    if nxt:
        cursor_path = "/workflows?limit=50&cursor=" + quote(nxt)
    for label, path in reads(n):
        if only and only not in label:
            continue
        if path == "CURSOR":
            if cursor_path is None:
                out.append((label, float("nan"), float("nan"), -1, float("nan")))
                continue
            path = cursor_path
        p, _, qs = path.partition("?")
        times = []
        rows_n = -1
        cpu0 = srv0 = 0.0
        for i in range(reps + 2):
            if i == 2:
                srv0 = server_cpu() if server_cpu else 0.0
                cpu0 = time.process_time()  # after the /proc scan of server_cpu(), which is not the read's
            t = time.perf_counter()
            resp = _get_qs(c, p, qs)
            dt = (time.perf_counter() - t) * 1000
            if resp.status != 200:
                raise SystemExit(f"{label}: HTTP {resp.status} {resp.text[:200]}")
            if i >= 2:
                times.append(dt)
            body = resp.json
            rows_n = len(body) if isinstance(body, list) else 1
        cpu = time.process_time() - cpu0 + ((server_cpu() - srv0) if server_cpu else 0.0)
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        out.append((label, statistics.median(times), p95, rows_n, cpu / reps * 1000))
    return out


def pg_server_cpu(url: str):
    """A function giving the CPU seconds used so far by the Postgres server's processes (the postmaster's
    children, found through its data directory; needs a local server this user may read), or None."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            data = conn.execute("SHOW data_directory").fetchone()[0]
        postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
    except (psycopg.Error, OSError, ValueError):
        return None

    def total() -> float:
        secs = 0.0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                secs += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return secs

    return total


def _get_qs(c, path: str, qs: str):
    """A GET with a pre-encoded query string (the test client encodes dicts itself)."""
    import io

    captured = {}
    from tests.wsgi import Headers, Response

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1" + path,
        "QUERY_STRING": qs,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": "0",
        "REMOTE_ADDR": "127.0.0.1",
    }

    def start_response(status, hdrs, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = Headers(hdrs)

    out = b"".join(c.app(environ, start_response))
    return Response(captured["status"], captured["headers"], out)


def burst(port: int, total: int, threads: int, tag: str) -> tuple[float, float, float, float]:
    """`total` starts from `threads` threads on keep-alive connections: (starts/s, p50, p99, max) in ms."""
    lat: list[float] = []
    lock = threading.Lock()
    per = total // threads

    def run(t: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for i in range(per):
            body = json.dumps(
                {
                    "workflow_type": "Burst",
                    "workflow_id": f"burst-{tag}-{t}-{i}",
                    "task_queue": "burst",
                    "search_attributes": {"customer": f"c{i % 50}"},
                }
            ).encode()
            s = time.perf_counter()
            c.request("POST", "/api/v1/workflows", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            mine.append((time.perf_counter() - s) * 1000)
            if r.status != 201:
                raise SystemExit(f"burst start: HTTP {r.status}")
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return len(lat) / wall, statistics.median(lat), lat[int(0.99 * (len(lat) - 1))], lat[-1]


def run_burst(db_backend: str, total: int, tag: str, tmp: Path):
    from tests.helpers import start_engine

    eng = start_engine(tmp, db=db_backend, timeout=120)
    try:
        c0 = _cpu_secs(eng.proc.pid)
        rate, p50, p99, mx = burst(eng.port, total, 8, tag)
        return rate, p50, p99, mx, (_cpu_secs(eng.proc.pid) - c0) / total * 1000
    finally:
        eng.stop()


def _cpu_secs(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc): a load-independent cost figure."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(n: int, results: dict[str, list[tuple[str, float, float, int, float]]]) -> None:
    """One table: p50/p95 wall ms and CPU ms (engine + database server) per read per backend."""
    names = list(results)
    print(f"\nreads on {n:,} workflows (in-process WSGI), ms; cpu = engine + database server CPU per read")
    head = f"{'read':22}" + "".join(f" {b + ' p50':>13} {b + ' p95':>13} {b + ' cpu':>13}" for b in names)
    print(head + "  rows  p95<=50")
    labels = [r[0] for r in next(iter(results.values()))]
    for i, label in enumerate(labels):
        line, ok, k = f"{label:22}", True, -1
        for b in names:
            _, p50, p95, k, cpu = results[b][i]
            line += f" {p50:13.1f} {p95:13.1f} {cpu:13.1f}"
            ok = ok and p95 <= 50
        print(f"{line} {k:5d}  {'yes' if ok else 'NO'}")


def print_bursts(total: int, rows_: list[tuple[str, float, float, float, float, float]]) -> None:
    print(f"\nbursts: {total} starts from 8 threads, real port (keep-alive)")
    print(
        f"{'database':24} {'starts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'engine CPU ms/start':>20}"
        "  ok(>=500/s, p99<=50)"
    )
    for label, rate, p50, p99, mx, cpu in rows_:
        ok = rate >= 500 and p99 <= 50
        print(f"{label:24} {rate:9.0f} {p50:8.1f} {p99:8.1f} {mx:8.1f} {cpu:20.2f}  {'yes' if ok else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workflows", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=4, help="events per workflow")
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "assay-scale.db"))
    ap.add_argument("--reuse", action="store_true", help="reuse --db if it already holds --workflows rows")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--burst", type=int, default=5000, help="starts per burst (0: skip bursts)")
    ap.add_argument("--postgres", action="store_true", help="also build and measure a throwaway Postgres")
    ap.add_argument("--pg-url", help="a Postgres database already built by --postgres (skips the build)")
    ap.add_argument("--no-sqlite", action="store_true", help="measure Postgres only")
    ap.add_argument("--skip-reads", action="store_true")
    ap.add_argument("--only", help="measure only the reads whose label contains this text")
    ap.add_argument(
        "--long-history",
        type=int,
        default=1000,
        help="steps of the long-history measurement (bench/long_history.py; 0: skip)",
    )
    ap.add_argument("--idle", default="50,200,1000", help="idle-worker counts for bench/idle.py ('' to skip)")
    ap.add_argument("--idle-only", action="store_true", help="only the idle-workers measurement")
    a = ap.parse_args()
    if a.idle_only:
        return run_idle(a)

    from assay.api import make_app
    from assay.engine import Engine
    from assay.store import open_store

    def measure(url: str, **kw) -> list[tuple[str, float, float, int, float]]:
        store = open_store(url, **kw)
        eng = Engine(store)
        try:
            srv = pg_server_cpu(url) if "://" in url and not url.startswith("sqlite") else None
            return measure_reads(make_app(eng), a.workflows, a.reps, a.only, srv)
        finally:
            eng.notifier.close()
            store.close()

    results: dict[str, list[tuple[str, float, float, int, float]]] = {}
    if not a.no_sqlite:
        have = 0
        if a.reuse and os.path.exists(a.db):
            try:
                have = sqlite3.connect(a.db).execute("SELECT COUNT(*) FROM workflows").fetchone()[0]
            except sqlite3.Error:
                have = 0
        if have < a.workflows:
            secs = build_sqlite(a.db, a.workflows, a.events)
            print(
                f"SQLite: built {a.workflows:,} workflows / {a.workflows * a.events:,} events in {secs:.0f} s"
            )
        else:
            print(f"SQLite: reusing {a.db} ({have:,} workflows)")
            open_store("sqlite:///" + a.db).close()  # apply any pending migration
        if not a.skip_reads:
            results["SQLite"] = measure("sqlite:///" + a.db)
    pg_url = a.pg_url
    if a.postgres and pg_url is None:
        from tests import pg

        pg_url = pg.fresh_database()
        secs = build_postgres(pg_url, a.workflows, a.events)
        print(
            f"Postgres: built {a.workflows:,} workflows / {a.workflows * a.events:,} events in {secs:.0f} s"
            f" ({pg_url})"
        )
    if pg_url is not None and not a.skip_reads:
        open_store(pg_url, min_size=1, max_size=2).close()  # apply any pending migration
        results["Postgres"] = measure(pg_url, min_size=1, max_size=4)
    if results:
        print_table(a.workflows, results)
    if a.burst:
        out = []
        with tempfile.TemporaryDirectory() as d:
            tag = f"{int(time.time())}"
            big = f"{a.workflows:,}"
            dbs = (
                [] if a.no_sqlite else [("empty SQLite", str(Path(d) / "empty.db")), (big + " SQLite", a.db)]
            )
            if pg_url is not None:
                from tests import pg

                dbs += [("empty Postgres", pg.fresh_database()), (big + " Postgres", pg_url)]
            for label, db in dbs:
                out.append((label, *run_burst(db, a.burst, tag, Path(d))))
        print_bursts(a.burst, out)
    if a.long_history:
        import long_history  # bench/long_history.py (this file's folder is on sys.path when run as a script)

        print()
        long_history.report(a.long_history, 40, list(long_history.VARIANTS))
    if a.idle:
        run_idle(a)


def run_idle(a: argparse.Namespace) -> None:
    """Idle workers (bench/idle.py): engine CPU and /health latency with N pollers, SQLite then Postgres."""
    import idle  # bench/idle.py

    counts = [int(x) for x in a.idle.split(",") if x]
    for postgres in (False, True) if a.postgres else (False,):
        idle.run(
            counts, window=30.0, wait=idle.default_wait(), honour=True, postgres=postgres, engine_args=[]
        )


if __name__ == "__main__":
    main()
