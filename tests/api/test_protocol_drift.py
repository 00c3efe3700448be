"""Bugs that came from protocol words and settings copied across layers (issue #15), one test each."""

from __future__ import annotations

import json

import pytest

from assay import protocol
from assay.api import make_app
from assay.engine import Engine
from tests.engine.support import Worker, act, start
from tests.wsgi import Client


def test_poll_accepts_a_wait_up_to_the_long_poll_setting(store, clock, settings) -> None:
    """ASSAY_LONG_POLL_MAX_SECS used to be ignored: the API refused any wait_secs above 60."""
    engine = Engine(store, clock=clock, settings=settings.replace(long_poll_max_secs=120.0))
    try:
        api = Client(make_app(engine))
        wid = api.request("POST", "/workers/register", {"identity": "t", "queue": "q"}).json["worker_id"]
        start(engine, "wf-long", queue="q")  # a task is ready: the poll returns at once
        r = api.request("POST", "/poll", {"queue": "q", "worker_id": wid, "wait_secs": 90})
        assert r.status == 200, r.text
        assert r.json["kind"] == protocol.TaskKind.workflow_task
        too_long = api.request(
            "POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": wid, "wait_secs": 121}
        )
        assert too_long.status == 400
        assert "wait_secs" in too_long.json["error"] and "120" in too_long.json["error"]
    finally:
        engine.notifier.close()


def test_default_long_poll_cap_still_refuses_above_sixty(client) -> None:
    wid = client.request("POST", "/workers/register", {"identity": "t", "queue": "q"}).json["worker_id"]
    r = client.request("POST", "/tasks/poll", {"queue": "q", "worker_id": wid, "wait_secs": 61})
    assert r.status == 400 and "wait_secs" in r.json["error"]


@pytest.mark.parametrize(
    "error",
    [{"code": 7, "message": "boom"}, ["a", 1], 42, True],
    ids=["object", "array", "number", "bool"],
)
def test_activity_and_workflow_errors_become_the_same_text(engine, client, error) -> None:
    """An activity's non-string error was stored as a Python repr ({'code': 7}); a workflow's as JSON.
    Both are now the error's JSON text."""
    w = Worker(engine, queue="q")
    start(engine, "wf-a", queue="q")
    w.run("wf-a", act(max_attempts=1))
    task = w.claim_activity()
    r = client.request("POST", f"/tasks/{task['id']}/fail", {"error": error, "worker_id": w.id})
    assert r.status == 200, r.text
    act_error = engine.get_activity(task["id"])["error"]
    assert act_error == json.dumps(error)
    assert json.loads(act_error) == error

    w2 = Worker(engine, queue="q2")
    start(engine, "wf-b", queue="q2")
    w2.run("wf-b", {"type": protocol.CommandType.FailWorkflow, "error": error})
    assert engine.get_workflow("wf-b")["error"] == act_error


def test_missing_errors_get_their_defaults(engine, client) -> None:
    w = Worker(engine, queue="q")
    start(engine, "wf-c", queue="q")
    w.run("wf-c", act(max_attempts=1))
    task = w.claim_activity()
    assert client.request("POST", f"/tasks/{task['id']}/fail", {"worker_id": w.id}).status == 200
    assert engine.get_activity(task["id"])["error"] == "activity failed"
    w2 = Worker(engine, queue="q2")
    start(engine, "wf-d", queue="q2")
    w2.run("wf-d", {"type": protocol.CommandType.FailWorkflow})
    assert engine.get_workflow("wf-d")["error"] == "workflow handler raised an error"


def test_protocol_endpoint_serves_the_vocabulary(client) -> None:
    for prefix in ("/api/v1", "/api/v1/engine/workflow"):
        r = client.request("GET", "/protocol", prefix=prefix)
        assert r.status == 200
        body = r.json
        assert body == json.loads(json.dumps(protocol.as_json()))
        assert body["workflow_statuses"] == [s.value for s in protocol.WorkflowStatus]
        assert "TERMINATED" not in body["workflow_statuses"]
        assert body["default_namespace"] == protocol.DEFAULT_NAMESPACE


def test_openapi_enums_come_from_the_protocol(client) -> None:
    doc = client.request("GET", "/openapi.json").json
    schemas = doc["components"]["schemas"]
    assert schemas["Workflow"]["properties"]["status"]["enum"] == [s.value for s in protocol.WorkflowStatus]
    assert schemas["Activity"]["properties"]["status"]["enum"] == [s.value for s in protocol.ActivityStatus]
    overlap = schemas["CreateSchedule"]["properties"]["overlap_policy"]
    assert overlap["enum"] == [p.value for p in protocol.OverlapPolicy]
    commands = [c["properties"]["type"]["const"] for c in schemas["Command"]["oneOf"]]
    assert commands == [c.value for c in protocol.CommandType]
    timer = next(
        c for c in schemas["Command"]["oneOf"] if c["properties"]["type"]["const"] == "ScheduleTimer"
    )
    assert timer["required"] == ["type", "seq"]
    assert set(timer["properties"]) == {"type", "seq", "duration_secs"}
