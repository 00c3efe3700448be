"""The sticky-worker fields over HTTP: `sticky` at registration, the workflow task fields of every poll
route (and none for an upstream worker), and the paged events route (`after`, `limit`)."""

from __future__ import annotations

import pytest

from assay.protocol import HISTORY_AFTER, HISTORY_LAST_SEQ, HISTORY_NEXT_AFTER, HISTORY_PAGE_MAX, STICKY
from tests.engine.test_sticky_history import UPSTREAM_TASK_KEYS
from tests.wsgi import Client


def register(client: Client, **extra) -> str:
    body = {"identity": "t", "queue": "q", "workflows": ["W"], "activities": ["a"], **extra}
    r = client.request("POST", "/workers/register", body)
    assert r.status == 200, r.text
    return r.json["worker_id"]


def start(client: Client, wf_id: str) -> None:
    r = client.request("POST", "/workflows", {"workflow_type": "W", "workflow_id": wf_id, "task_queue": "q"})
    assert r.status in (200, 201), r.text


def run_activity(client: Client, wid: str, wf_id: str, seq: int) -> int:
    """Submit ScheduleActivity for the held task, then poll and complete the activity."""
    cmd = {"type": "ScheduleActivity", "seq": seq, "name": "a", "task_queue": "q"}
    r = client.request("POST", f"/workflow-tasks/{wf_id}/commands", {"worker_id": wid, "commands": [cmd]})
    assert r.status == 200, r.text
    a = client.request("POST", "/tasks/poll", {"queue": "q", "worker_id": wid}).json
    r = client.request("POST", f"/tasks/{a['id']}/complete", {"result": seq})
    assert r.status == 200, r.text
    return int(a["id"])


def last_seq(engine, wf_id: str) -> int:
    return engine.get_workflow(wf_id)["last_seq"]


@pytest.mark.parametrize("bad", ["yes", 1, [], {}])
def test_register_rejects_a_non_boolean_sticky(client, bad):
    r = client.request("POST", "/workers/register", {"identity": "t", "queue": "q", STICKY: bad})
    assert r.status == 400 and STICKY in r.json["error"]


def test_register_and_heartbeat_reregistration_keep_the_flag(client, engine):
    wid = register(client, sticky=True)
    plain = register(client)
    with engine.store.read() as tx:
        assert tx.get_worker(wid)[STICKY] == 1 and tx.get_worker(plain)[STICKY] == 0
    engine.deregister_worker(wid)
    with engine.store.tx() as tx:
        tx.delete_worker(wid)
    r = client.request(
        "POST", "/workers/heartbeat", {"worker_id": wid, "identity": "t", "queue": "q", STICKY: True}
    )
    assert r.status == 200, r.text
    with engine.store.read() as tx:
        assert tx.get_worker(wid)[STICKY] == 1


def test_every_poll_route_gives_the_sticky_worker_partial_histories(client, engine):
    wid = register(client, sticky=True)
    start(client, "p1")
    task = client.request("POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": wid}).json
    assert task[HISTORY_LAST_SEQ] == 1 and HISTORY_AFTER not in task
    seen = 1
    routes = [
        ("/poll", {}, lambda body: body["task"]),
        ("/workflow-tasks/poll", {"max_tasks": 5}, lambda body: body["tasks"][0]["task"]),
        ("/poll", {"max_tasks": 5, "activities": False}, lambda body: body["tasks"][0]["task"]),
        ("/workflow-tasks/poll", {}, lambda body: body),
    ]
    for n, (path, extra, pick) in enumerate(routes, start=1):
        run_activity(client, wid, "p1", n)
        body = client.request("POST", path, {"queue": "q", "worker_id": wid, **extra}).json
        task = pick(body)
        last = last_seq(engine, "p1")
        assert task[HISTORY_AFTER] == seen and task[HISTORY_LAST_SEQ] == last, path
        assert [e["seq"] for e in task["history"]] == list(range(seen + 1, last + 1)), path
        seen = last
    # eager: the commands route's next task, and an activity completion's
    cmd = {"type": "ScheduleActivity", "seq": 9, "name": "a", "task_queue": "q"}
    r = client.request(
        "POST",
        "/workflow-tasks/p1/commands",
        {"worker_id": wid, "commands": [cmd], "eager_activities": 1},
    )
    (a,) = r.json["activity_tasks"]
    r = client.request(
        "POST", f"/tasks/{a['id']}/complete", {"result": 9, "worker_id": wid, "eager_workflow_task": True}
    )
    task = r.json["workflow_task"]
    assert task[HISTORY_AFTER] == seen and task[HISTORY_LAST_SEQ] == last_seq(engine, "p1")


def test_an_upstream_worker_sees_no_new_field(client, engine):
    wid = register(client)
    start(client, "u1")
    task = client.request("POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": wid}).json
    assert set(task) == UPSTREAM_TASK_KEYS
    run_activity(client, wid, "u1", 1)
    body = client.request("POST", "/poll", {"queue": "q", "worker_id": wid}).json
    assert set(body["task"]) == UPSTREAM_TASK_KEYS
    assert [e["seq"] for e in body["task"]["history"]] == list(range(1, last_seq(engine, "u1") + 1))


def test_events_route_pages_with_after_and_limit(client, engine):
    wid = register(client)
    start(client, "e1")
    client.request("POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": wid})
    run_activity(client, wid, "e1", 1)
    last = last_seq(engine, "e1")
    everything = client.request("GET", "/workflows/e1/events").json
    assert [e["seq"] for e in everything] == list(range(1, last + 1))  # no params: all, as ever
    assert client.request("GET", "/workflows/e1/events", query={"after_seq": 1}).json == everything[1:]
    pages, after = [], 0
    while True:
        page = client.request("GET", "/workflows/e1/events", query={"after": after, "limit": 2}).json
        if not page:
            break
        assert len(page) <= 2
        pages += page
        after = page[-1]["seq"]
    assert pages == everything
    r = client.request("GET", "/workflows/e1/events", query={"limit": HISTORY_PAGE_MAX})
    assert r.status == 200 and r.json == everything


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": HISTORY_PAGE_MAX + 1}, {"limit": "x"}, {"after": -1}, {"after": "1.5"}]
)
def test_events_route_rejects_bad_paging(client, query):
    start(client, "b1")
    r = client.request("GET", "/workflows/b1/events", query=query)
    assert r.status == 400
    assert next(iter(query)) in r.json["error"]


def test_a_paged_task_over_http(client, engine, monkeypatch):
    from assay.engine import dispatch

    monkeypatch.setattr(dispatch, "HISTORY_PAGE_MAX", 2)
    wid = register(client)
    start(client, "g1")
    client.request("POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": wid})
    run_activity(client, wid, "g1", 1)
    sticky = register(client, sticky=True)
    task = client.request("POST", "/workflow-tasks/poll", {"queue": "q", "worker_id": sticky}).json
    last = last_seq(engine, "g1")
    assert [e["seq"] for e in task["history"]] == [1, 2] and task[HISTORY_NEXT_AFTER] == 2
    assert task[HISTORY_LAST_SEQ] == last
    rest = client.request("GET", "/workflows/g1/events", query={"after": 2, "limit": 1000}).json
    assert [e["seq"] for e in rest] == list(range(3, last + 1))
