"""End to end: the Python worker uses eager dispatch, batch polls and batch results (issue 16), as the Lua
worker does, and the engine's fencing still holds. Observed through the engine's request counters
(GET /metrics: assay_http_requests_total by route)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import http, wait_until
from tests.lua.e2e import events, start, wait_status
from tests.python.e2e import WORKERS, PyWorker

pytestmark = pytest.mark.e2e

WORKER = WORKERS / "dispatch_worker.py"


def requests(engine) -> dict[tuple[str, str], float]:
    """{(method, route): count of 2xx answers} from the engine's Prometheus counters."""
    status, text, _ = http("GET", engine.api + "/metrics")
    assert status == 200 and isinstance(text, str), text
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "assay_http_requests_total" and s.labels["status"].startswith("2"):
                key = (s.labels["method"], s.labels["route"])
                out[key] = out.get(key, 0) + s.value
    return out


def delta(before, after, route, method="POST") -> float:
    return after.get((method, route), 0) - before.get((method, route), 0)


def test_activity_and_next_workflow_task_come_eagerly_not_from_polls(engine, logdir):
    # one slot, long polls: every answered /poll is a claimed task (an idle poll is still held)
    w = PyWorker(WORKER, engine.url, logdir, queue="eager", env={"ASSAY_WORKER_POLL_WAIT_SECS": "30"})
    w.wait_ready()
    try:
        for i in range(3):
            before = requests(engine)
            start(engine, "PyOne", f"eager-{i}", 21, queue="eager")
            wf = wait_status(engine, f"eager-{i}", worker=w)
            assert wf["status"] == "COMPLETED" and wf["result"] == 42, wf
            # (the counter of the request that completed the workflow may be bumped just after its commit)
            after = wait_until(
                lambda b=before: (lambda a: a if delta(b, a, "/workflow-tasks/{id}/commands") >= 2 else None)(
                    requests(engine)
                ),
                10,
                what="the completing commands request to be counted",
            )
            # 3 tasks (workflow, activity, workflow) but ONE poll: the commands request handed back the
            # activity, its completion handed back the workflow's next task
            assert delta(before, after, "/poll") == 1, (before, after, w.log())
            assert delta(before, after, "/workflow-tasks/{id}/commands") == 2
            assert delta(before, after, "/tasks/{id}/complete") == 1
            types = [e["event_type"] for e in events(engine, f"eager-{i}")]
            assert types.count("ActivityCompleted") == 1 and types[-1] == "WorkflowCompleted"
    finally:
        assert w.stop() == 0, w.log()


def test_results_of_slots_finishing_together_go_in_one_request(engine, logdir):
    w = PyWorker(WORKER, engine.url, logdir, queue="meet", env={"CONCURRENCY": "4"})
    w.wait_ready()
    try:
        before = requests(engine)
        for i in range(6):
            start(engine, "PyMeet", f"meet-{i}", queue="meet")
            wf = wait_status(engine, f"meet-{i}", worker=w)
            assert wf["status"] == "COMPLETED" and wf["result"] == [0, 1, 2, 3], wf
            types = [e["event_type"] for e in events(engine, f"meet-{i}")]
            assert types.count("ActivityCompleted") == 4 and types.count("ActivityScheduled") == 4
        after = requests(engine)
    finally:
        assert w.stop() == 0, w.log()
    # 24 activity results; four finish at once each time: some of them shared a request
    batched = delta(before, after, "/tasks/results")
    singles = delta(before, after, "/tasks/{id}/complete")
    assert batched >= 1, (before, after)
    assert singles + 2 * batched <= 24 and singles + batched < 24


def test_a_late_result_of_an_eager_activity_is_refused(engine, logdir):
    w = PyWorker(WORKER, engine.url, logdir, queue="late", env={"CONCURRENCY": "2"})
    w.wait_ready()
    try:
        start(engine, "PyLate", "late-1", queue="late")
        wf = wait_status(engine, "late-1", worker=w)
        assert wf["status"] == "COMPLETED" and wf["result"] == {"attempt": 2}, wf
        # attempt 1 (claimed eagerly) timed out; its result, reported later, is fenced off
        wait_until(lambda: "result discarded" in w.log(), 15, what="the late result to be refused")
    finally:
        assert w.stop() == 0, w.log()
    evs = events(engine, "late-1")
    done = [e for e in evs if e["event_type"] == "ActivityCompleted"]
    assert len(done) == 1 and done[0]["payload"]["result"] == {"attempt": 2}
    assert evs[-1]["event_type"] == "WorkflowCompleted"
