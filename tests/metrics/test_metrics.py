"""GET /metrics after a scripted workload: counters and histograms move by exactly the right amounts,
read with prometheus_client's own text parser (never string matching). The clock is a FakeClock, so
every latency is known to the second."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assay.api import make_app
from assay.auth import mint_api_key
from assay.clock import FakeClock
from assay.config import load_settings
from assay.engine import Engine
from assay.store import open_store
from tests.wsgi import Client

API = "/api/v1/engine/workflow"


def scrape(client: Client, prefix: str = API, **kw) -> dict[str, list]:
    r = client.get("/metrics", prefix=prefix, **kw)
    assert r.status == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list], name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def ok(r, status=200):
    assert r.status == status, (r.status, r.text)
    return r.json


@pytest.fixture
def clock():
    return FakeClock(1_750_000_000.0)


@pytest.fixture
def engine(tmp_path, clock):
    store = open_store("sqlite:///" + str(tmp_path / "m.db"))
    e = Engine(store, clock=clock, settings=load_settings({"backend": "sqlite::memory:"}, environ={}))
    yield e
    e.notifier.close()
    store.close()


@pytest.fixture
def api(engine):
    return Client(make_app(engine), prefix=API)


class Worker:
    def __init__(self, api: Client, queue: str) -> None:
        self.api = api
        self.queue = queue
        self.id = ok(api.post("/workers/register", {"identity": "t", "queue": queue}))["worker_id"]

    def workflow_task(self) -> dict:
        task = ok(self.api.post("/workflow-tasks/poll", {"queue": self.queue, "worker_id": self.id}))
        assert task, "expected a workflow task"
        return task

    def commands(self, wf_id: str, *commands, status=200):
        r = self.api.post(
            f"/workflow-tasks/{wf_id}/commands", {"worker_id": self.id, "commands": list(commands)}
        )
        assert r.status == status, r.text

    def activity(self) -> dict:
        task = ok(self.api.post("/tasks/poll", {"queue": self.queue, "worker_id": self.id}))
        assert task.get("id"), task
        return task


def test_counters_and_histograms_move_by_the_workload(api, clock, engine):
    before = scrape(api)
    assert value(before, "assay_workflows_started_total") == 0
    w = Worker(api, "q1")
    for i in range(4):
        ok(
            api.post("/workflows", {"workflow_type": "Order", "workflow_id": f"o-{i}", "task_queue": "q1"}),
            201,
        )
    ok(api.post("/workflows/o-3/cancel", {"reason": "not needed"}))  # PENDING -> CANCELLED at once

    # queue gauges while three workflow tasks wait: ages from the fake clock
    clock.advance(2.0)
    g = scrape(api)
    assert value(g, "assay_queue_depth", namespace="main", queue="q1", kind="workflow") == 3
    assert value(g, "assay_queue_oldest_ready_age_seconds", queue="q1", kind="workflow") == 2.0
    assert value(g, "assay_workflows", queue="q1", workflow_type="Order", status="PENDING") == 3
    assert value(g, "assay_workers", namespace="main", queue="q1") == 1

    # o-0 completes; o-1 runs an activity that fails twice; o-2 fails; one batch is rejected
    t0 = w.workflow_task()  # waited 2 s
    w.commands(t0["workflow_id"], {"type": "CompleteWorkflow", "result": 1})
    clock.advance(1.0)
    t1 = w.workflow_task()  # waited 3 s
    w.commands(t1["workflow_id"], {"type": "ScheduleActivity", "seq": 1, "name": "charge", "max_attempts": 2})
    clock.advance(0.5)
    a = w.activity()  # ready 0.5 s ago
    clock.advance(3.0)
    ok(api.post(f"/tasks/{a['id']}/fail", {"error": "card declined", "worker_id": w.id}))  # ran 3 s, retried
    clock.advance(1.0)  # the 1 s backoff has passed: ready exactly now
    a2 = w.activity()
    clock.advance(2.0)
    ok(api.post(f"/tasks/{a2['id']}/fail", {"error": "card declined", "worker_id": w.id}))  # ran 2 s, final
    t2 = w.workflow_task()  # o-2 has been ready for 9.5 s
    assert t2["workflow_id"] == "o-2"
    w.commands("o-2", {"type": "NoSuchCommand"}, status=400)  # rejected: a workflow-task failure
    clock.advance(1.0)  # o-1 (its activity failed) and o-2 (given back) have both waited 1 s
    assert w.workflow_task()["workflow_id"] == "o-1"
    w.commands("o-1", {"type": "FailWorkflow", "error": "charge failed"})
    assert w.workflow_task()["workflow_id"] == "o-2"
    w.commands("o-2", {"type": "CompleteWorkflow", "result": 2})

    m = scrape(api)
    wf = {"namespace": "main", "queue": "q1", "workflow_type": "Order"}
    assert value(m, "assay_workflows_started_total", **wf) == 4
    assert value(m, "assay_workflows_finished_total", status="COMPLETED", **wf) == 2
    assert value(m, "assay_workflows_finished_total", status="FAILED", **wf) == 1
    assert value(m, "assay_workflows_finished_total", status="CANCELLED", **wf) == 1
    assert value(m, "assay_workflow_task_failures_total", reason="rejected", **wf) == 1
    # workflow tasks: 2 + 3 + 9.5 + 1 + 1 seconds from ready to claim
    s2s = {"namespace": "main", "queue": "q1", "kind": "workflow"}
    assert value(m, "assay_schedule_to_start_seconds_count", **s2s) == 5
    assert value(m, "assay_schedule_to_start_seconds_sum", **s2s) == pytest.approx(16.5)
    assert value(m, "assay_schedule_to_start_seconds_bucket", le="2.5", **s2s) == 3  # 2 s, 1 s, 1 s
    act_s2s = dict(s2s, kind="activity")
    assert value(m, "assay_schedule_to_start_seconds_count", **act_s2s) == 2
    assert value(m, "assay_schedule_to_start_seconds_sum", **act_s2s) == pytest.approx(0.5)
    act = {"namespace": "main", "queue": "q1", "activity": "charge"}
    assert value(m, "assay_activity_attempts_total", **act) == 2
    assert value(m, "assay_activity_retries_total", **act) == 1
    assert value(m, "assay_activity_failures_total", **act) == 1
    assert value(m, "assay_activity_run_seconds_count", outcome="failed", **act) == 2
    assert value(m, "assay_activity_run_seconds_sum", outcome="failed", **act) == pytest.approx(5.0)
    assert value(m, "assay_activity_run_seconds_bucket", outcome="failed", le="2.5", **act) == 1
    # gauges: nothing is left to run
    assert value(m, "assay_workflows", queue="q1") == 0
    assert value(m, "assay_queue_depth", queue="q1") == 0
    # HTTP: four starts answered 201, one rejected batch 400; routes are templates, never ids
    assert value(m, "assay_http_requests_total", method="POST", route="/workflows", status="201") == 4
    assert value(m, "assay_http_requests_total", route="/workflow-tasks/{id}/commands", status="400") == 1
    assert value(m, "assay_http_requests_total", route="/workflow-tasks/{id}/commands", status="200") == 4
    assert not [s for s in m["assay_http_requests_total"] if "o-" in s.labels["route"]]
    assert value(m, "assay_http_request_duration_seconds_count", route="/workflows", method="POST") == 4
    # the store committed, and every commit covered at least one transaction
    assert value(m, "assay_store_commit_seconds_count") >= 10
    commits = value(m, "assay_store_commit_seconds_count")
    assert (
        commits <= value(m, "assay_store_committed_transactions_total") < commits * 2
    )  # one request at a time
    assert value(m, "assay_cluster_gauges_exported") == 1
    assert "process_cpu_seconds_total" in m or "python_info" in m


def test_rolled_back_batches_count_nothing(api, engine):
    """A batch whose later command fails is rolled back whole, so its CompleteWorkflow is not counted."""
    w = Worker(api, "q2")
    ok(api.post("/workflows", {"workflow_type": "T", "workflow_id": "rb", "task_queue": "q2"}), 201)
    t = w.workflow_task()
    r = api.post(
        f"/workflow-tasks/{t['workflow_id']}/commands",
        {"worker_id": w.id, "commands": [{"type": "CompleteWorkflow"}, {"type": "ScheduleTimer"}]},
    )
    assert r.status == 400
    m = scrape(api)
    assert value(m, "assay_workflows_finished_total") == 0
    assert value(m, "assay_workflow_task_failures_total", reason="rejected") == 1


def test_timeouts_schedule_delay_and_nondeterminism(api, clock, engine):
    w = Worker(api, "q3")
    ok(api.post("/workflows", {"workflow_type": "T", "workflow_id": "to", "task_queue": "q3"}), 201)
    t = w.workflow_task()
    w.commands(
        t["workflow_id"], {"type": "ScheduleActivity", "seq": 1, "name": "slow", "start_to_close_secs": 5}
    )
    w.activity()
    clock.advance(6.0)
    assert engine.expire_activities() == 1
    ok(api.post("/workflows", {"workflow_type": "T", "workflow_id": "nd", "task_queue": "q3"}), 201)
    t = w.workflow_task()
    w.commands(
        t["workflow_id"], {"type": "FailWorkflow", "error": "nondeterministic workflow: activity #1 ..."}
    )
    ok(
        api.post(
            "/schedules", {"name": "s", "workflow_type": "T", "cron_expr": "* * * * *", "task_queue": "q3"}
        ),
        201,
    )
    due = engine.next_schedule_due()
    clock.set(due + 0.75)
    assert engine.fire_due_schedules() == 1
    m = scrape(api)
    assert value(m, "assay_activity_timeouts_total", activity="slow", timeout="start_to_close") == 1
    assert value(m, "assay_activity_retries_total", activity="slow") == 1
    assert value(m, "assay_workflow_task_failures_total", reason="nondeterminism") == 1
    assert value(m, "assay_schedule_fire_delay_seconds_count", namespace="main") == 1
    assert value(m, "assay_schedule_fire_delay_seconds_sum", namespace="main") == pytest.approx(0.75)


def test_both_prefixes_and_two_engines_do_not_share_counters(api, tmp_path, clock):
    ok(api.post("/workflows", {"workflow_type": "T", "workflow_id": "x"}), 201)
    assert value(scrape(api, prefix="/api/v1"), "assay_workflows_started_total") == 1
    store = open_store("sqlite:///" + str(tmp_path / "other.db"))
    other = Engine(store, clock=clock, settings=load_settings({"backend": "sqlite::memory:"}, environ={}))
    try:
        assert value(scrape(Client(make_app(other))), "assay_workflows_started_total") == 0
    finally:
        store.close()
    assert value(scrape(api), "assay_workflows_started_total") == 1


def test_metrics_need_auth_when_the_api_does(tmp_path, clock):
    from assay.auth import AuthConfig, Authenticator

    store = open_store("sqlite:///" + str(tmp_path / "a.db"))
    engine = Engine(store, clock=clock, settings=load_settings({"backend": "sqlite::memory:"}, environ={}))
    try:
        app = make_app(engine, auth=Authenticator(store, AuthConfig(api_keys=True)))
        c = Client(app, prefix=API)
        for path in ("/metrics", "/metrics/series"):
            r = c.get(path)
            assert r.status == 401 and "error" in r.json
        key = mint_api_key(store, "prom", clock.now())["plaintext"]
        m = scrape(c, headers={"Authorization": f"Bearer {key}"})
        assert value(m, "assay_cluster_gauges_exported") == 1
    finally:
        store.close()


def test_switched_off(tmp_path, clock):
    store = open_store("sqlite:///" + str(tmp_path / "off.db"))
    settings = load_settings({"backend": "sqlite::memory:"}, environ={"ASSAY_METRICS": "0"})
    engine = Engine(store, clock=clock, settings=settings)
    try:
        assert not engine.metrics.enabled and store.on_commit is None
        c = Client(make_app(engine), prefix=API)
        ok(c.post("/workflows", {"workflow_type": "T", "workflow_id": "x"}), 201)
        for path in ("/metrics", "/metrics/series"):
            r = c.get(path)
            assert r.status == 404 and "ASSAY_METRICS" in r.json["error"]
    finally:
        store.close()
