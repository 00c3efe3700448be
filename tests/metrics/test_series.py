"""GET /metrics/series: the one-hour history behind the dashboard charts, sampled on the engine clock."""

from __future__ import annotations

import pytest

from assay.api import make_app
from assay.background import MetricsLoop
from assay.clock import FakeClock
from assay.config import load_settings
from assay.engine import Engine
from assay.metrics import SAMPLE_SECS, WINDOW_SECS
from assay.store import open_store
from tests.wsgi import Client

API = "/api/v1/engine/workflow"


@pytest.fixture
def clock():
    return FakeClock(1_750_000_000.0)


@pytest.fixture
def engine(tmp_path, clock):
    store = open_store("sqlite:///" + str(tmp_path / "s.db"))
    e = Engine(store, clock=clock, settings=load_settings({"backend": "sqlite::memory:"}, environ={}))
    yield e
    e.notifier.close()
    store.close()


@pytest.fixture
def api(engine):
    return Client(make_app(engine), prefix=API)


def ok(r, status=200):
    assert r.status == status, (r.status, r.text)
    return r.json


def run_one(api, wf_id: str, queue: str, result: str = "complete") -> None:
    wid = ok(api.post("/workers/register", {"identity": "t", "queue": queue}))["worker_id"]
    task = ok(api.post("/workflow-tasks/poll", {"queue": queue, "worker_id": wid}))
    cmd = {"type": "CompleteWorkflow"} if result == "complete" else {"type": "FailWorkflow", "error": "x"}
    ok(api.post(f"/workflow-tasks/{task['workflow_id']}/commands", {"worker_id": wid, "commands": [cmd]}))


def test_intervals_count_starts_completions_depth_and_latency(api, engine, clock):
    loop = MetricsLoop(engine)
    t0 = clock.now()
    assert loop.tick(t0) == t0 + SAMPLE_SECS
    assert loop.tick(t0 + 5) == t0 + SAMPLE_SECS  # woken early: no extra sample
    for i in range(3):
        ok(api.post("/workflows", {"workflow_type": "A", "workflow_id": f"a-{i}", "task_queue": "qa"}), 201)
    clock.advance(4.0)
    run_one(api, "a-0", "qa")  # claimed 4 s after it was ready
    clock.advance(6.0)
    loop.tick(clock.now())  # closes the first interval
    clock.advance(1.0)
    run_one(api, "a-1", "qa", result="fail")  # in the partial interval, 11 s after ready
    s = ok(api.get("/metrics/series", query={"namespace": "main"}))
    assert s["interval_secs"] == SAMPLE_SECS and s["window_secs"] == WINDOW_SECS
    assert s["t"] == [t0 + 10, t0 + 11]  # the closed interval, then the partial one up to now
    assert s["started"] == [3, 0]
    assert s["completed"] == [1, 0]
    assert s["failed"] == [0, 1]
    assert s["queues"]["qa"]["depth"] == [2, 1]
    assert s["queues"]["qa"]["latency"] == [pytest.approx(4.0), pytest.approx(11.0)]
    assert s["failures"] == [{"kind": "workflow", "name": "A", "count": 1}]
    other = ok(api.get("/metrics/series", query={"namespace": "elsewhere"}, prefix="/api/v1"))
    assert other["started"] == [0, 0] and other["queues"] == {} and other["failures"] == []


def test_history_keeps_one_hour(api, engine, clock):
    for _ in range(int(WINDOW_SECS / SAMPLE_SECS) + 50):
        engine.metrics.sample(clock.now())
        clock.advance(SAMPLE_SECS)
    s = ok(api.get("/metrics/series"))
    assert len(s["t"]) == int(WINDOW_SECS / SAMPLE_SECS) + 1  # 360 closed intervals + the partial one
    assert s["t"][-1] - s["t"][0] <= WINDOW_SECS
