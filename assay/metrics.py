"""Engine metrics, declared in one place: Prometheus counters, histograms and gauges, plus a one-hour
history (sampled every 10 s) for the dashboard charts.

The engine calls the small hook methods below (`workflow_started`, `task_claimed`, ...). Hooks that run
inside a transaction take its `Effects` and are applied only after the COMMIT (a rolled-back batch
counts nothing). They never touch the database and take no lock of their own beyond prometheus_client's.

Gauges that need the database (running / pending workflows, queue depth, oldest ready task, workers)
are read at scrape time by a custom collector, with one grouped query per table cached for a second.
On Postgres each instance exports its own process-level metrics (requests, claims, commits, ...) and
only the leader exports the cluster-wide gauges, so summing them over instances never double counts.

Each engine has its own CollectorRegistry (never the process-global default): several engines in one
process (tests) do not clash. `ASSAY_METRICS=0` replaces all of it with `NullMetrics` (no-op hooks).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from assay.protocol import TaskKind, WorkflowStatus

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
RUN_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
COMMIT_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SAMPLE_SECS = 10.0
WINDOW_SECS = 3600.0
GAUGE_CACHE_SECS = 1.0
FAILED_STATUSES = (WorkflowStatus.FAILED.value, WorkflowStatus.TIMED_OUT.value)


class NullMetrics:
    """Metrics switched off (ASSAY_METRICS=0): every hook is a no-op."""

    enabled = False

    def workflow_started(self, fx: Any, wf: dict[str, Any]) -> None:
        pass

    def workflow_finished(self, fx: Any, wf: dict[str, Any], status: str) -> None:
        pass

    def workflow_task_failed(self, fx: Any, wf: dict[str, Any], reason: str) -> None:
        pass

    def task_claimed(
        self, fx: Any, kind: str, rec: dict[str, Any], now: float, namespace: str | None
    ) -> None:
        pass

    def activity_finished(self, fx: Any, act: dict[str, Any], wf: dict[str, Any], now: float) -> None:
        pass

    def activity_failed(
        self, fx: Any, act: dict[str, Any], wf: dict[str, Any], now: float, final: bool
    ) -> None:
        pass

    def activity_timed_out(self, fx: Any, act: dict[str, Any], wf: dict[str, Any], reason: str) -> None:
        pass

    def schedule_fired(self, fx: Any, namespace: str, delay: float) -> None:
        pass

    def loop_lag(self, loop: str, seconds: float) -> None:
        pass

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        pass

    def sample(self, now: float) -> float | None:
        return None


NULL = NullMetrics()


def for_engine(engine: Any) -> NullMetrics:
    """The metrics of one engine: a `Metrics` with its own registry, or NULL when switched off."""
    if not getattr(engine.settings, "metrics", True):
        return NULL
    m = Metrics(engine)
    engine.store.on_commit = m.store_commit
    return m


def _later(fx: Any, fn: Any, *args: Any) -> None:
    if fx is None:
        fn(*args)
    else:
        fx.after.append((fn, args))


class Metrics(NullMetrics):
    enabled = True

    def __init__(self, engine: Any) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            gc_collector,
            platform_collector,
            process_collector,
        )

        self.engine = engine
        self.registry = r = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        wf = ("namespace", "queue", "workflow_type")
        act = ("namespace", "queue", "activity")
        self.started = Counter("assay_workflows_started", "Workflows started.", wf, registry=r)
        self.finished = Counter(
            "assay_workflows_finished",
            "Workflows that reached a terminal status (COMPLETED, FAILED, CANCELLED, TIMED_OUT; "
            "a terminated workflow is FAILED).",
            (*wf, "status"),
            registry=r,
        )
        self.wf_task_failures = Counter(
            "assay_workflow_task_failures",
            "Workflow tasks that failed: rejected command batch, lease timeout, nondeterminism.",
            (*wf, "reason"),
            registry=r,
        )
        self.schedule_to_start = Histogram(
            "assay_schedule_to_start_seconds",
            "Time from a task becoming ready to a worker claiming it.",
            ("namespace", "queue", "kind"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.activity_run = Histogram(
            "assay_activity_run_seconds",
            "Activity attempt run time (claim to completion or failure).",
            (*act, "outcome"),
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "assay_activity_attempts", "Activity attempts started (claims).", act, registry=r
        )
        self.retries = Counter(
            "assay_activity_retries", "Failed activity attempts that will be retried.", act, registry=r
        )
        self.act_failures = Counter(
            "assay_activity_failures", "Activities that failed for good (ActivityFailed).", act, registry=r
        )
        self.timeouts = Counter(
            "assay_activity_timeouts",
            "Activity attempts ended by a timeout (start_to_close, heartbeat, worker_lost).",
            (*act, "timeout"),
            registry=r,
        )
        self.http_requests = Counter(
            "assay_http_requests",
            "API requests by route and status.",
            ("method", "route", "status"),
            registry=r,
        )
        self.http_seconds = Histogram(
            "assay_http_request_duration_seconds",
            "API request latency (streams: until the response starts).",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "assay_store_commit_seconds", "Time a database COMMIT took.", buckets=COMMIT_BUCKETS, registry=r
        )
        # group-commit size as two counters (mean = transactions / commits): a counter is cheaper than a
        # second histogram on every COMMIT
        self.commit_txs = Counter(
            "assay_store_committed_transactions",
            "Logical transactions made durable; divided by assay_store_commit_seconds_count: the mean "
            "group-commit size (SQLite group commit; 1 per COMMIT on Postgres).",
            registry=r,
        )
        self.loop_lag_seconds = Histogram(
            "assay_loop_lag_seconds",
            "How late a background loop ran after its due time.",
            ("loop",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.schedule_delay = Histogram(
            "assay_schedule_fire_delay_seconds",
            "Delay between a cron schedule's due time and its fire.",
            ("namespace",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        held = Gauge("assay_held_requests", "Long-polls and SSE streams holding a server thread.", registry=r)
        held.set_function(lambda: engine.held_requests)
        r.register(_StoreCollector(self))
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._gauge_lock = threading.Lock()
        self._gauge_cache: tuple[float, dict[str, Any]] | None = None
        self.points: deque[dict[str, Any]] = deque(maxlen=int(WINDOW_SECS / SAMPLE_SECS) + 1)
        self._points_lock = threading.Lock()

    # --- hooks (engine) ---------------------------------------------------------------------
    def workflow_started(self, fx: Any, wf: dict[str, Any]) -> None:
        _later(fx, self._inc, self.started, (wf["namespace"], wf["task_queue"], wf["workflow_type"]))

    def workflow_finished(self, fx: Any, wf: dict[str, Any], status: str) -> None:
        labels = (wf["namespace"], wf["task_queue"], wf["workflow_type"])
        _later(fx, self._inc, self.finished, (*labels, status))
        if status == WorkflowStatus.FAILED and "nondetermin" in str(wf.get("error") or "").lower():
            _later(fx, self._inc, self.wf_task_failures, (*labels, "nondeterminism"))

    def workflow_task_failed(self, fx: Any, wf: dict[str, Any], reason: str) -> None:
        _later(
            fx,
            self._inc,
            self.wf_task_failures,
            (wf["namespace"], wf["task_queue"], wf["workflow_type"], reason),
        )

    def task_claimed(
        self, fx: Any, kind: str, rec: dict[str, Any], now: float, namespace: str | None
    ) -> None:
        if kind == TaskKind.workflow_task:
            ready = rec.get("ready_at")
            labels = (rec["namespace"], rec["task_queue"], "workflow")
            _later(fx, self._observe, self.schedule_to_start, labels, 0.0 if ready is None else now - ready)
        else:
            ns = namespace or ""
            labels = (ns, rec["task_queue"], "activity")
            _later(fx, self._observe, self.schedule_to_start, labels, now - float(rec["scheduled_at"]))
            _later(fx, self._inc, self.attempts, (ns, rec["task_queue"], rec["name"]))

    def activity_finished(self, fx: Any, act: dict[str, Any], wf: dict[str, Any], now: float) -> None:
        self._run_time(fx, act, wf, now, "completed")

    def activity_failed(
        self, fx: Any, act: dict[str, Any], wf: dict[str, Any], now: float, final: bool
    ) -> None:
        self._run_time(fx, act, wf, now, "failed")
        labels = (wf["namespace"], act["task_queue"], act["name"])
        _later(fx, self._inc, self.act_failures if final else self.retries, labels)

    def activity_timed_out(self, fx: Any, act: dict[str, Any], wf: dict[str, Any], reason: str) -> None:
        _later(fx, self._inc, self.timeouts, (wf["namespace"], act["task_queue"], act["name"], reason))

    def schedule_fired(self, fx: Any, namespace: str, delay: float) -> None:
        _later(fx, self._observe, self.schedule_delay, (namespace,), max(0.0, delay))

    def loop_lag(self, loop: str, seconds: float) -> None:
        self.loop_lag_seconds.labels(loop).observe(max(0.0, seconds))

    def store_commit(self, seconds: float, covered: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_txs.inc(max(1, covered))

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._http_children.get(key)
        if pair is None:
            pair = (
                self.http_requests.labels(method, route, str(status)),
                self.http_seconds.labels(method, route),
            )
            self._http_children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def _run_time(self, fx: Any, act: dict[str, Any], wf: dict[str, Any], now: float, outcome: str) -> None:
        started = act.get("started_at")
        if started is not None:
            labels = (wf["namespace"], act["task_queue"], act["name"], outcome)
            _later(fx, self._observe, self.activity_run, labels, max(0.0, now - float(started)))

    @staticmethod
    def _inc(metric: Any, labels: tuple[str, ...]) -> None:
        metric.labels(*labels).inc()

    @staticmethod
    def _observe(metric: Any, labels: tuple[str, ...], value: float) -> None:
        metric.labels(*labels).observe(value)

    # --- exposition ---------------------------------------------------------------------------
    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def gauges(self) -> dict[str, Any]:
        """The database gauges, read at most once a second."""
        with self._gauge_lock:
            mono = self.engine.clock.monotonic()
            if self._gauge_cache is not None and mono - self._gauge_cache[0] < GAUGE_CACHE_SECS:
                return self._gauge_cache[1]
            now = self.engine.now()
            with self.engine.store.read() as tx:
                data = tx.metrics_gauges(now)
            data["now"] = now
            self._gauge_cache = (mono, data)
            return data

    def exports_cluster_gauges(self) -> bool:
        store = self.engine.store
        return not store.multi_instance or bool(getattr(store, "is_leader", False))

    # --- history for the dashboard -------------------------------------------------------------
    def sample(self, now: float) -> float | None:
        """Record one point of the one-hour history; returns when the next one is due."""
        point = self._snapshot(now)
        with self._points_lock:
            self.points.append(point)
        return now + SAMPLE_SECS

    def _snapshot(self, now: float) -> dict[str, Any]:
        counts: dict[tuple[str, str], float] = {}  # (namespace, what) -> cumulative count
        fails: dict[tuple[str, str, str], float] = {}  # (namespace, kind, name) -> cumulative count
        s2s: dict[tuple[str, str], list[float]] = {}  # (namespace, queue) -> [sum, count]
        for s in _samples(self.started, "_total"):
            _add(counts, (s.labels["namespace"], "started"), s.value)
        for s in _samples(self.finished, "_total"):
            st = s.labels["status"]
            _add(counts, (s.labels["namespace"], st), s.value)
            if st in FAILED_STATUSES:
                _add(fails, (s.labels["namespace"], "workflow", s.labels["workflow_type"]), s.value)
        for metric in (self.retries, self.act_failures):
            for s in _samples(metric, "_total"):
                _add(fails, (s.labels["namespace"], "activity", s.labels["activity"]), s.value)
        for s in _samples(self.wf_task_failures, "_total"):
            _add(fails, (s.labels["namespace"], TaskKind.workflow_task.value, s.labels["reason"]), s.value)
        for s in _samples(self.schedule_to_start, ("_sum", "_count")):
            acc = s2s.setdefault((s.labels["namespace"], s.labels["queue"]), [0.0, 0.0])
            acc[0 if s.name.endswith("_sum") else 1] += s.value
        depth: dict[tuple[str, str], int] = {}
        try:
            for ns, q, _kind, n, _oldest in self.gauges()["ready"]:
                depth[(ns, q)] = depth.get((ns, q), 0) + n
        except Exception:  # a busy or closed store: the point has no depth, the history goes on
            depth = {}
        return {"t": now, "counts": counts, "fails": fails, "s2s": s2s, "depth": depth}

    def series(self, namespace: str) -> dict[str, Any]:
        """The last hour for one namespace, one entry per interval (the last one is partial, up to now)."""
        with self._points_lock:
            pts = list(self.points)
        now = self.engine.now()
        if not pts or now > pts[-1]["t"]:
            pts.append(self._snapshot(now))
        ts: list[float] = []
        out: dict[str, list[Any]] = {k: [] for k in ("started", "completed", "failed", "cancelled")}
        keys = {
            "started": ("started",),
            "completed": (WorkflowStatus.COMPLETED.value,),
            "failed": FAILED_STATUSES,
            "cancelled": (WorkflowStatus.CANCELLED.value,),
        }
        queue_names = sorted(
            {q for p in pts for (ns, q) in p["depth"] if ns == namespace}
            | {q for p in pts for (ns, q) in p["s2s"] if ns == namespace}
        )
        queues: dict[str, dict[str, list[Any]]] = {q: {"depth": [], "latency": []} for q in queue_names}
        for prev, cur in zip(pts, pts[1:], strict=False):
            ts.append(cur["t"])
            for name, sts in keys.items():
                out[name].append(
                    int(
                        sum(
                            cur["counts"].get((namespace, s), 0) - prev["counts"].get((namespace, s), 0)
                            for s in sts
                        )
                    )
                )
            for q, col in queues.items():
                col["depth"].append(cur["depth"].get((namespace, q), 0))
                a, b = cur["s2s"].get((namespace, q), [0.0, 0.0]), prev["s2s"].get((namespace, q), [0.0, 0.0])
                n = b and (a[1] - b[1])
                col["latency"].append(round((a[0] - b[0]) / n, 6) if n else None)
        failures = []
        if len(pts) > 1:
            first, last = pts[0]["fails"], pts[-1]["fails"]
            for (ns, kind, name), v in last.items():
                d = v - first.get((ns, kind, name), 0)
                if ns == namespace and d > 0:
                    failures.append({"kind": kind, "name": name, "count": int(d)})
        failures.sort(key=lambda f: (-f["count"], f["kind"], f["name"]))
        return {
            "namespace": namespace,
            "now": now,
            "interval_secs": SAMPLE_SECS,
            "window_secs": WINDOW_SECS,
            "t": ts,
            **out,
            "queues": queues,
            "failures": failures,
        }


def _samples(metric: Any, suffixes: str | tuple[str, ...]) -> Iterable[Any]:
    for fam in metric.collect():
        for s in fam.samples:
            if s.name.endswith(suffixes):
                yield s


def _add(acc: dict[Any, float], key: Any, value: float) -> None:
    acc[key] = acc.get(key, 0.0) + value


class _StoreCollector:
    """Cluster-wide gauges read from the database at scrape time (leader only on Postgres)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []  # not known before a scrape (and describing must not query the database)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        leader = self.m.exports_cluster_gauges()
        g = GaugeMetricFamily(
            "assay_cluster_gauges_exported",
            "1 on the instance that exports the cluster-wide gauges (SQLite: always; Postgres: the leader).",
        )
        g.add_metric([], 1.0 if leader else 0.0)
        yield g
        if not leader:
            return
        data = self.m.gauges()
        wf = GaugeMetricFamily(
            "assay_workflows",
            "Workflows not yet finished, by status (PENDING, RUNNING).",
            labels=["namespace", "queue", "workflow_type", "status"],
        )
        for ns, q, t, st, n in data["workflows"]:
            wf.add_metric([ns, q, t, st], n)
        yield wf
        depth = GaugeMetricFamily(
            "assay_queue_depth", "Tasks ready to be claimed.", labels=["namespace", "queue", "kind"]
        )
        age = GaugeMetricFamily(
            "assay_queue_oldest_ready_age_seconds",
            "Age of the oldest claimable task (0 when none).",
            labels=["namespace", "queue", "kind"],
        )
        for ns, q, kind, n, oldest in data["ready"]:
            depth.add_metric([ns, q, kind], n)
            age.add_metric([ns, q, kind], max(0.0, data["now"] - oldest) if oldest is not None else 0.0)
        yield depth
        yield age
        workers = GaugeMetricFamily("assay_workers", "Registered workers.", labels=["namespace", "queue"])
        for ns, q, n in data["workers"]:
            workers.add_metric([ns, q], n)
        yield workers
