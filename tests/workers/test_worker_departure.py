"""A worker that leaves (deregisters, or hangs up on a held long-poll) is never handed a task; what it held
goes back at once. Also: workflow records say whether a query snapshot exists (state_seq)."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import http, start_engine, wait_until


def _register(client, queue="q"):
    return client.post(
        "/workers/register", {"identity": "w", "queue": queue, "heartbeat_interval_secs": 5}
    ).json["worker_id"]


def test_deregister_releases_leases_and_activities(client, engine):
    w1 = _register(client)
    client.post("/workflows", {"workflow_type": "T", "workflow_id": "d1", "task_queue": "q"})
    client.post("/workflows", {"workflow_type": "T", "workflow_id": "d2", "task_queue": "q"})
    task = client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w1}).json
    assert task["workflow_id"] == "d1"
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w1})  # d2 leased too
    # d1 schedules an activity, which w1 then claims
    w0 = _register(client)
    r = client.post(
        "/workflow-tasks/d1/commands",
        {"worker_id": w1, "commands": [{"type": "ScheduleActivity", "seq": 1, "name": "a"}]},
    )
    assert r.status == 200
    act = client.post("/tasks/poll", {"queue": "q", "worker_id": w1}).json
    assert act["status"] == "RUNNING"
    r = client.post(f"/workers/{w1}/deregister", {})
    assert r.status == 200
    assert r.json == {"known": True, "leases_released": 1, "activities_released": 1}
    assert all(w["id"] != w1 for w in client.get("/workers").json)
    # the lease is gone: another worker gets d2 now; the activity is back (attempt 2) for another worker
    t2 = client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w0}).json
    assert t2["workflow_id"] == "d2"
    a = client.get(f"/activities/{act['id']}").json
    assert a["status"] == "PENDING" and a["attempt"] == 2 and "stopped" in a["error"]
    # the departed worker's late submission is fenced
    assert client.post("/workflow-tasks/d2/commands", {"worker_id": w1, "commands": []}).status == 409
    # unknown ids are fine
    assert client.post("/workers/w-nope/deregister").json["known"] is False


def test_deregistered_worker_poll_claims_nothing(engine):
    wid = engine.register_worker(identity="w", queue="q")
    engine.start_workflow(workflow_type="T", workflow_id="x", task_queue="q")
    engine.deregister_worker(wid)
    assert engine.poll("q", wid, 0) == (None, None)
    # re-registering the same id (heartbeat re-registration) makes it a worker again
    engine.register_worker(identity="w", queue="q", worker_id=wid)
    kind, task = engine.poll("q", wid, 0)
    assert kind == "workflow_task" and task["id"] == "x"


def test_poll_that_hears_its_client_is_gone_claims_nothing(engine):
    wid = engine.register_worker(identity="w", queue="q")
    engine.start_workflow(workflow_type="T", workflow_id="y", task_queue="q")
    assert engine.poll("q", wid, 0, gone=lambda: True) == (None, None)
    assert engine.poll("q", wid, 0, gone=lambda: False)[0] == "workflow_task"


def test_state_seq_tells_whether_a_snapshot_exists(client):
    w = _register(client)
    client.post("/workflows", {"workflow_type": "T", "workflow_id": "s1", "task_queue": "q"})
    assert client.get("/workflows/s1").json["state_seq"] is None
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    client.post(
        "/workflow-tasks/s1/commands",
        {
            "worker_id": w,
            "commands": [
                {"type": "RecordSnapshot", "state": {"k": 1}},
                {"type": "ScheduleTimer", "seq": 1, "duration_secs": 60},
            ],
        },
    )
    rec = client.get("/workflows/s1").json
    state = client.get("/workflows/s1/state").json
    assert rec["state_seq"] == state["event_seq"] == 1
    assert [w["state_seq"] for w in client.get("/workflows").json] == [1]


@pytest.mark.e2e
def test_hung_up_long_poll_does_not_swallow_work(tmp_path):
    """A worker that closes its idle long-poll (e.g. on SIGTERM) must not be handed the next task."""
    eng = start_engine(tmp_path)
    try:
        st, reg, _ = http("POST", eng.api + "/workers/register", {"identity": "gone", "queue": "hq"})
        body = b'{"worker_id": "%s", "queue": "hq", "wait_secs": 30}' % reg["worker_id"].encode()
        s = socket.create_connection(("127.0.0.1", eng.port))
        s.sendall(
            b"POST /api/v1/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        wait_until(
            lambda: http("GET", eng.api + "/health")[1]["held_requests"] >= 1, timeout=15, what="held poll"
        )
        s.close()  # the worker hangs up
        wait_until(
            lambda: http("GET", eng.api + "/health")[1]["held_requests"] == 0,
            timeout=10,
            what="the held poll notices the hang-up",
        )
        http("POST", eng.api + "/workflows", {"workflow_type": "T", "workflow_id": "h1", "task_queue": "hq"})
        st, reg2, _ = http("POST", eng.api + "/workers/register", {"identity": "new", "queue": "hq"})
        # a task swallowed by the dead poll would stay leased for the dispatch timeout (30 s), far past this
        # poll's wait: getting it proves it was never handed out
        st, got, _ = http(
            "POST", eng.api + "/poll", {"worker_id": reg2["worker_id"], "queue": "hq", "wait_secs": 5}
        )
        assert got is not None and got["kind"] == "workflow_task" and got["task"]["workflow_id"] == "h1"
    finally:
        eng.stop()
