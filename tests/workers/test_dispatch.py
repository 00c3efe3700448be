"""Getting tasks to workers faster (issue 16): batch polls, eager dispatch, hand-over to a held poll, one
wake-up per ready task, empty polls that write nothing. Upstream clients (no opt-in fields) see the
responses they always saw; every claim stays fenced."""

from __future__ import annotations

import threading

import pytest

from assay.engine.notify import Notifier
from tests.helpers import wait_until


def _register(client, queue="q", workflows=("T",), activities=("a",)):
    return client.post(
        "/workers/register",
        {"identity": "w", "queue": queue, "workflows": list(workflows), "activities": list(activities)},
    ).json["worker_id"]


def _start(client, wf_id, queue="q", wf_type="T"):
    r = client.post("/workflows", {"workflow_type": wf_type, "workflow_id": wf_id, "task_queue": queue})
    assert r.status == 201, r.text


def _schedule(n, name="a"):
    return [{"type": "ScheduleActivity", "seq": i + 1, "name": name, "input": {"i": i}} for i in range(n)]


# --- batch polls ------------------------------------------------------------------------------------
def test_batch_poll_claims_up_to_max_tasks(client):
    w = _register(client)
    for i in range(3):
        _start(client, f"b{i}")
    r = client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w, "max_tasks": 2})
    assert r.status == 200
    tasks = r.json["tasks"]
    assert [t["kind"] for t in tasks] == ["workflow_task", "workflow_task"]
    assert [t["task"]["workflow_id"] for t in tasks] == ["b0", "b1"]
    assert all(t["task"]["history"][0]["event_type"] == "WorkflowStarted" for t in tasks)
    assert [t["task"]["workflow_id"] for t in client.post(
        "/workflow-tasks/poll", {"queue": "q", "worker_id": w, "max_tasks": 5}
    ).json["tasks"]] == ["b2"]  # fmt: skip
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w, "max_tasks": 5}).json == {
        "tasks": []
    }
    # each one is leased to the poller: its commands are accepted
    for i in range(3):
        assert client.post(f"/workflow-tasks/b{i}/commands", {"worker_id": w, "commands": []}).status == 200


def test_combined_batch_poll_mixes_kinds_and_activity_batch(client):
    w = _register(client)
    _start(client, "m1")
    _start(client, "m2")
    t = client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w}).json
    assert (
        client.post(
            f"/workflow-tasks/{t['workflow_id']}/commands", {"worker_id": w, "commands": _schedule(2)}
        ).status
        == 200
    )
    got = client.post("/poll", {"queue": "q", "worker_id": w, "max_tasks": 10}).json["tasks"]
    assert sorted(x["kind"] for x in got) == ["activity_task", "activity_task", "workflow_task"]
    assert all(x["task"]["claimed_by"] == w for x in got if x["kind"] == "activity_task")
    assert client.post("/tasks/poll", {"queue": "q", "worker_id": w, "max_tasks": 3}).json == {"tasks": []}


@pytest.mark.parametrize("bad", [0, 101, "3", 1.5, True])
def test_batch_poll_rejects_bad_max_tasks(client, bad):
    w = _register(client)
    r = client.post("/poll", {"queue": "q", "worker_id": w, "max_tasks": bad})
    assert r.status == 400 and "max_tasks" in r.json["error"]


def test_upstream_poll_shapes_unchanged(client):
    w = _register(client)
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w}).json is None
    assert client.post("/tasks/poll", {"queue": "q", "worker_id": w}).json == {"task": None}
    assert client.post("/poll", {"queue": "q", "worker_id": w}).json == {"kind": None, "task": None}


# --- eager dispatch ---------------------------------------------------------------------------------
def test_eager_commands_hand_back_the_scheduled_activity(client):
    w = _register(client)
    _start(client, "e1")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    r = client.post(
        "/workflow-tasks/e1/commands",
        {"worker_id": w, "commands": _schedule(2), "eager_activities": 1, "eager_workflow_task": True},
    )
    assert r.status == 200
    acts = r.json["activity_tasks"]
    assert len(acts) == 1 and acts[0]["status"] == "RUNNING" and acts[0]["claimed_by"] == w
    assert acts[0]["seq"] == 1 and acts[0]["input"] == {"i": 0}
    assert r.json["workflow_task"] is None  # nothing new for the workflow yet
    # the second activity was not taken: another worker polls it
    other = _register(client)
    a2 = client.post("/tasks/poll", {"queue": "q", "worker_id": other}).json
    assert a2["seq"] == 2 and a2["claimed_by"] == other


def test_eager_complete_hands_back_the_workflow_task_fenced(client):
    w = _register(client)
    _start(client, "e2")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    act = client.post(
        "/workflow-tasks/e2/commands", {"worker_id": w, "commands": _schedule(1), "eager_activities": 1}
    ).json["activity_tasks"][0]
    r = client.post(
        f"/tasks/{act['id']}/complete", {"result": 42, "worker_id": w, "eager_workflow_task": True}
    )
    assert r.status == 200
    task = r.json["workflow_task"]
    assert task["workflow_id"] == "e2"
    assert [e["event_type"] for e in task["history"]][-1] == "ActivityCompleted"
    # nobody else can claim it, and another worker's commands are fenced off
    other = _register(client)
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": other}).json is None
    r = client.post(
        "/workflow-tasks/e2/commands",
        {"worker_id": other, "commands": [{"type": "CompleteWorkflow", "result": 1}]},
    )
    assert r.status == 409
    r = client.post(
        "/workflow-tasks/e2/commands",
        {"worker_id": w, "commands": [{"type": "CompleteWorkflow", "result": 42}]},
    )
    assert r.status == 200 and client.get("/workflows/e2").json["status"] == "COMPLETED"


def test_eager_only_for_what_the_worker_serves(client):
    w = _register(client, workflows=("Other",), activities=("b",))
    _start(client, "e3")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    r = client.post(
        "/workflow-tasks/e3/commands", {"worker_id": w, "commands": _schedule(1), "eager_activities": 5}
    )
    assert r.json == {"activity_tasks": [], "workflow_task": None}  # activity "a" is not one of its own
    act = client.post("/tasks/poll", {"queue": "q", "worker_id": w}).json
    r = client.post(
        f"/tasks/{act['id']}/complete", {"result": 1, "worker_id": w, "eager_workflow_task": True}
    )
    assert r.json == {"workflow_task": None}  # workflow type T is not one of its own
    other = _register(client)
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": other}).json["workflow_id"] == "e3"


def test_eager_failure_hands_back_the_workflow_task_only_when_final(client):
    w = _register(client)
    _start(client, "e4")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    cmd = dict(_schedule(1)[0], max_attempts=2, initial_interval_secs=0)
    act = client.post(
        "/workflow-tasks/e4/commands", {"worker_id": w, "commands": [cmd], "eager_activities": 1}
    ).json["activity_tasks"][0]
    r = client.post(f"/tasks/{act['id']}/fail", {"error": "x", "worker_id": w, "eager_workflow_task": True})
    assert r.json == {"workflow_task": None}  # retried: nothing for the workflow yet
    act = client.post("/tasks/poll", {"queue": "q", "worker_id": w}).json
    r = client.post(f"/tasks/{act['id']}/fail", {"error": "y", "worker_id": w, "eager_workflow_task": True})
    hist = r.json["workflow_task"]["history"]
    assert hist[-1]["event_type"] == "ActivityFailed"


def test_upstream_commands_and_complete_answer_empty(client):
    w = _register(client)
    _start(client, "u1")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    r = client.post("/workflow-tasks/u1/commands", {"worker_id": w, "commands": _schedule(1)})
    assert r.status == 200 and r.raw == b""
    act = client.post("/tasks/poll", {"queue": "q", "worker_id": w}).json
    r = client.post(f"/tasks/{act['id']}/complete", {"result": 1, "worker_id": w})
    assert r.status == 200 and r.raw == b""


@pytest.mark.parametrize(
    "field,bad", [("eager_activities", -1), ("eager_activities", "1"), ("eager_workflow_task", 1)]
)
def test_eager_fields_validated(client, field, bad):
    w = _register(client)
    _start(client, "v1")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    r = client.post("/workflow-tasks/v1/commands", {"worker_id": w, "commands": [], field: bad})
    assert r.status == 400 and field in r.json["error"]


# --- hand-over to a held poll, wake-ups -------------------------------------------------------------------
def _held_poll(client, w, out, path="/poll", **extra):
    def run():
        out.append(client.post(path, {"queue": "q", "worker_id": w, "wait_secs": 30, **extra}).json)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_start_hands_the_task_to_a_held_poll(client, engine):
    w = _register(client)
    out: list = []
    t = _held_poll(client, w, out)
    wait_until(lambda: engine.notifier.has_waiters("wf:q"), 10, what="held poll")
    _start(client, "h1")
    # claimed in the start's own transaction: leased to the poller before the poll even answers
    rec = client.get("/workflows/h1").json
    assert rec["status"] == "RUNNING" and rec["claimed_by"] == w
    t.join(10)
    assert out and out[0]["kind"] == "workflow_task" and out[0]["task"]["workflow_id"] == "h1"
    assert out[0]["task"]["history"][0]["event_type"] == "WorkflowStarted"
    # fenced like any claim
    other = _register(client)
    r = client.post("/workflow-tasks/h1/commands", {"worker_id": other, "commands": []})
    assert r.status == 409
    assert client.post("/workflow-tasks/h1/commands", {"worker_id": w, "commands": []}).status == 200


def test_scheduled_activity_goes_to_a_held_activity_poll(client, engine):
    w = _register(client)
    _start(client, "h2")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    poller = _register(client)
    out: list = []
    t = _held_poll(client, poller, out, path="/tasks/poll", max_tasks=4)
    wait_until(lambda: engine.notifier.has_waiters("act:q"), 10, what="held poll")
    client.post("/workflow-tasks/h2/commands", {"worker_id": w, "commands": _schedule(1)})
    t.join(10)
    assert out and [x["task"]["claimed_by"] for x in out[0]["tasks"]] == [poller]


def test_one_ready_task_wakes_one_held_poll(client, engine):
    ws = [_register(client) for _ in range(3)]
    outs: list[list] = [[] for _ in ws]
    threads = [_held_poll(client, w, o) for w, o in zip(ws, outs, strict=True)]
    wait_until(lambda: engine.held_requests == 3, 10, what="3 held polls")
    _start(client, "one")
    wait_until(lambda: sum(len(o) for o in outs) == 1, 10, what="one answer")
    assert engine.held_requests == 2  # the other two are still waiting, not woken for nothing
    _start(client, "two")
    wait_until(lambda: sum(len(o) for o in outs) == 2, 10, what="second answer")
    got = sorted(o[0]["task"]["workflow_id"] for o in outs if o)
    assert got == ["one", "two"] and engine.held_requests == 1
    engine.notifier.close()
    for t in threads:
        t.join(10)


def test_notifier_wakes_one_waiter_per_work_item_and_all_for_other_keys():
    n = Notifier()
    woke: list[str] = []
    lock = threading.Lock()

    def waiter(key):
        w = n.wait(n.versions([key]), 30)
        with lock:
            woke.append(key if w is not None and w.woken else "timeout")

    ts = [threading.Thread(target=waiter, args=("wf:q",), daemon=True) for _ in range(3)]
    ts += [threading.Thread(target=waiter, args=("loop:x",), daemon=True) for _ in range(2)]
    for t in ts:
        t.start()
    wait_until(lambda: n.has_waiters("wf:q") and len(n._waiters.get("wf:q", [])) == 3, 10, what="waiters")
    wait_until(lambda: len(n._waiters.get("loop:x", [])) == 2, 10, what="loop waiters")
    n.bump(["wf:q"])
    wait_until(lambda: woke.count("wf:q") == 1, 10, what="one wake")
    before = n.versions(["wf:q"])
    n.bump([], counts={"wf:q": 0})  # handed over already: no claimable work came, nobody wakes
    assert n.versions(["wf:q"]) == before  # (polls that looked still trust their look)
    n.bump(["loop:x"])
    wait_until(lambda: woke.count("loop:x") == 2, 10, what="all loop waiters")
    assert woke.count("wf:q") == 1
    n.bump([], counts={"wf:q": 2})
    wait_until(lambda: woke.count("wf:q") == 3, 10, what="two more")
    for t in ts:
        t.join(10)


def test_empty_poll_opens_no_write_transaction(client, engine):
    if not hasattr(engine.store, "commits"):
        pytest.skip("commit counter is SQLite's")
    w = _register(client)
    before = engine.store.commits
    for path in ("/poll", "/tasks/poll", "/workflow-tasks/poll"):
        assert client.post(path, {"queue": "q", "worker_id": w}).status == 200
        assert client.post(path, {"queue": "q", "worker_id": w, "max_tasks": 3}).status == 200
    assert engine.store.commits == before
    _start(client, "x")
    after_start = engine.store.commits
    client.post("/poll", {"queue": "q", "worker_id": w})
    assert engine.store.commits == after_start + 1  # a poll that finds work writes its claim


# --- several results in one request ------------------------------------------------------------------
def test_results_complete_and_fail_several_in_one_request(client):
    w = _register(client)
    _start(client, "r1")
    _start(client, "r2")
    for _ in ("r1", "r2"):
        client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    client.post("/workflow-tasks/r1/commands", {"worker_id": w, "commands": _schedule(1)})
    client.post(
        "/workflow-tasks/r2/commands",
        {"worker_id": w, "commands": [dict(_schedule(1)[0], max_attempts=1)]},
    )
    acts = client.post("/tasks/poll", {"queue": "q", "worker_id": w, "max_tasks": 5}).json["tasks"]
    ids = {x["task"]["workflow_id"]: x["task"]["id"] for x in acts}
    other = _register(client)
    r = client.post(
        "/tasks/results",
        {
            "worker_id": w,
            "results": [
                {"id": ids["r1"], "result": {"ok": 1}},
                {"id": ids["r2"], "error": "boom"},
                {"id": 99999, "result": 1},
                {"id": ids["r1"], "result": "again"},  # already completed: 409, changes nothing
            ],
            "eager_workflow_task": True,
        },
    )
    assert r.status == 200
    assert [x["status"] for x in r.json["results"]] == [200, 200, 404, 409]
    assert "error" in r.json["results"][2]
    tasks = {t["workflow_id"]: t for t in r.json["workflow_tasks"]}
    assert set(tasks) == {"r1", "r2"}
    assert tasks["r1"]["history"][-1]["event_type"] == "ActivityCompleted"
    assert tasks["r1"]["history"][-1]["payload"]["result"] == {"ok": 1}
    assert tasks["r2"]["history"][-1]["event_type"] == "ActivityFailed"
    # both leased to w: another worker polls nothing and is fenced off
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": other}).json is None
    assert client.post("/workflow-tasks/r1/commands", {"worker_id": other, "commands": []}).status == 409


def test_results_without_eager_leaves_the_tasks_to_polls(client):
    w = _register(client)
    _start(client, "r3")
    client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w})
    client.post("/workflow-tasks/r3/commands", {"worker_id": w, "commands": _schedule(1)})
    act = client.post("/tasks/poll", {"queue": "q", "worker_id": w}).json
    r = client.post("/tasks/results", {"worker_id": w, "results": [{"id": act["id"], "result": 5}]})
    assert r.json == {"results": [{"id": act["id"], "status": 200}], "workflow_tasks": []}
    assert client.post("/workflow-tasks/poll", {"queue": "q", "worker_id": w}).json["workflow_id"] == "r3"


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": "w", "results": []},
        {"worker_id": "w", "results": [{"result": 1}]},
        {"worker_id": "w", "results": [{"id": "1"}]},
        {"worker_id": "w", "results": [{"id": -24995140776204443648}]},
        {"worker_id": "w", "results": "x"},
        {"results": [{"id": 1}]},
    ],
)
def test_results_bad_input(client, body):
    r = client.post("/tasks/results", body)
    assert r.status == 400 and r.json["error"]
