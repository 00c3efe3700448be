"""Every endpoint under both prefixes, with the API's response shapes (real JSON values, not JSON text in
strings: docs/design.md, "Real JSON values")."""

from __future__ import annotations

import re

import pytest

from assay.protocol import ScheduleActivity
from tests.engine.support import Worker, act

WORKFLOW_KEYS = {
    "id", "namespace", "run_id", "workflow_type", "task_queue", "status", "input", "result", "error",
    "parent_id", "claimed_by", "search_attributes", "archived_at", "archive_uri", "created_at", "updated_at",
    "completed_at",
}  # fmt: skip
ACTIVITY_KEYS = {
    "id", "workflow_id", "seq", "name", "task_queue", "input", "status", "result", "error", "attempt",
    "max_attempts", "initial_interval_secs", "backoff_coefficient", "start_to_close_secs",
    "heartbeat_timeout_secs", "claimed_by", "scheduled_at", "started_at", "completed_at", "last_heartbeat",
}  # fmt: skip
TASK_KEYS = {
    "workflow_id", "workflow_type", "namespace", "task_queue", "input", "history", "run_id", "parent_id",
    "search_attributes", "created_at", "attempt",
}  # fmt: skip


def ok(r, status=200):
    assert r.status == status, (r.status, r.text)
    return r.json


def is_empty(r, status=200):
    assert r.status == status, (r.status, r.text)
    assert r.raw == b"" and r.headers.get("Content-Length") == "0"


# --- meta ------------------------------------------------------------------------------------------


def test_meta(api):
    h = ok(api.get("/health"))
    assert h["status"] == "ok" and h["service"] == "assay-workflow"
    v = ok(api.get("/version"))
    assert isinstance(v["version"], str) and v["build_profile"] in ("release", "debug")
    spec = ok(api.get("/openapi.json"))
    assert spec["openapi"].startswith("3") and "/workflows" in str(spec["paths"])
    r = api.get("/docs")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")


# --- workflows ----------------------------------------------------------------------------------------


def test_start_describe_list(api, clock):
    r = ok(
        api.post("/workflows", {"workflow_type": "Hello", "workflow_id": "h-1", "input": {"name": "Ada"}}),
        201,
    )
    assert r == {"workflow_id": "h-1", "run_id": f"run-h-1-{int(clock.now())}", "status": "PENDING"}
    d = ok(api.get("/workflows/h-1"))
    assert WORKFLOW_KEYS <= set(d)
    assert d["input"] == {"name": "Ada"}  # a real JSON value
    assert d["task_queue"] == "default" and d["namespace"] == "main"  # design.md "Default queue"
    assert isinstance(d["search_attributes"], dict) and "assay_engine_version" in d["search_attributes"]
    assert d["status"] == "PENDING" and d["created_at"] == clock.now()
    ok(api.post("/workflows", {"workflow_type": "Hello", "workflow_id": "h-2", "task_queue": "q", "namespace": "team",
                               "search_attributes": {"tier": "gold", "assay_engine_version": "mine"}}), 201)  # fmt: skip
    d2 = ok(api.get("/workflows/h-2"))
    assert d2["search_attributes"] == {"tier": "gold", "assay_engine_version": "mine"}
    assert [w["id"] for w in ok(api.get("/workflows"))] == ["h-1"]
    assert [w["id"] for w in ok(api.get("/workflows", query={"namespace": "team"}))] == ["h-2"]


def test_list_query_parameters(api, world, clock):
    def ids(**q):
        return [w["id"] for w in ok(api.get("/workflows", query=q))]

    assert ids() == ["wf-1", "done"]  # newest first (same instant: id descending)
    assert ids(status="COMPLETED") == ["done"]
    assert ids(status="completed") == ["done"]  # case-insensitive
    assert ids(type="T", limit=1) == ["wf-1"] and ids(type="T", limit=1, offset=1) == ["done"]
    assert ids(type="Other") == [] and ids(namespace="team") == []
    assert ids(search_attrs='{"tier": "gold"}') == ["wf-1"]
    assert ids(search_attrs='{"n": 1}') == ["wf-1"]
    assert ids(search_attrs='{"n": "1"}') == []  # JSON-typed: "1" is not 1
    assert ids(search_attrs='{"tier": "gold", "n": 2}') == []
    assert ids(parent_id="nobody") == []
    assert ids(task_queue="default", status="RUNNING") == ["wf-1"]
    assert ids(claimed_by=world.worker_id, status="RUNNING") == ["wf-1"]


def test_events_are_real_json(api, world):
    evs = ok(api.get("/workflows/wf-1/events"))
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert set(evs[0]) == {"id", "workflow_id", "seq", "event_type", "payload", "timestamp"}
    assert evs[0]["event_type"] == "WorkflowStarted" and evs[0]["payload"] == {"n": 1}
    sched = [e for e in evs if e["event_type"] == "ActivityScheduled"][0]
    assert sched["payload"]["input"] == {"a": [1, 2]}
    assert [e["seq"] for e in ok(api.get("/workflows/wf-1/events", query={"after_seq": 3}))][0] == 4


def test_signal_cancel_terminate(api, world):
    is_empty(api.post("/workflows/wf-1/signal/go", {"payload": {"x": 1}}))
    is_empty(api.post("/workflows/wf-1/signal/bare"))
    evs = [e for e in ok(api.get("/workflows/wf-1/events")) if e["event_type"] == "SignalReceived"]
    assert [e["payload"] for e in evs] == [
        {"signal": "go", "payload": {"x": 1}},
        {"signal": "bare", "payload": None},
    ]
    is_empty(api.post("/workflows/wf-1/cancel", {"reason": "enough"}))
    assert ok(api.get("/workflows/wf-1"))["cancel_requested"] is True
    is_empty(api.post("/workflows/wf-1/terminate", {"reason": "now"}))
    d = ok(api.get("/workflows/wf-1"))
    assert d["status"] == "FAILED" and d["error"] == "now"


def test_children_and_continue_as_new(api, engine, world):
    w = Worker(engine)
    engine.signal("wf-1", "x", None)
    w.run("wf-1", {"type": "StartChildWorkflow", "workflow_type": "K", "workflow_id": "kid"})
    kids = ok(api.get("/workflows/wf-1/children"))
    assert (
        [k["id"] for k in kids] == ["kid"]
        and kids[0]["parent_id"] == "wf-1"
        and WORKFLOW_KEYS <= set(kids[0])
    )
    r = ok(api.post("/workflows/kid/continue-as-new", {"input": [3]}), 201)
    assert r["workflow_id"].startswith("kid-continued-") and r["status"] == "PENDING" and r["run_id"]
    assert ok(api.get("/workflows/kid"))["result"] == {"continued_as_new": r["workflow_id"]}
    r2 = ok(api.post("/workflows/" + r["workflow_id"] + "/continue-as-new", {"workflow_id": "kid-3"}), 201)
    assert r2["workflow_id"] == "kid-3"


def test_state(api, world):
    s = ok(api.get("/workflows/wf-1/state"))
    assert s["state"] == {"q": 1} and isinstance(s["event_seq"], int) and isinstance(s["created_at"], float)
    v = ok(api.get("/workflows/wf-1/state/q"))
    assert v["value"] == 1 and v["event_seq"] == s["event_seq"]
    assert api.get("/workflows/wf-1/state/nope").status == 404
    assert api.get("/workflows/done/state").status == 404


# --- activities and worker protocol -------------------------------------------------------------------


def test_direct_activity_scheduling(api, world):
    body = {"name": "direct", "seq": 50, "task_queue": "dq", "input": {"k": [1]}, "max_attempts": 2}
    a = ok(api.post("/workflows/wf-1/activities", body), 201)
    assert (
        ACTIVITY_KEYS <= set(a) and a["input"] == {"k": [1]} and a["status"] == "PENDING" and a["seq"] == 50
    )
    again = ok(api.post("/workflows/wf-1/activities", dict(body, input="other")), 201)
    assert again["id"] == a["id"] and again["input"] == {"k": [1]}  # idempotent on seq
    got = ok(api.get(f"/activities/{a['id']}"))
    assert got == a


def test_worker_protocol_round_trip(api, engine):
    wid = ok(api.post("/workers/register", {"identity": "me", "queue": "q", "workflows": ["W"], "activities": ["A"],
                                            "heartbeat_interval_secs": 5}))["worker_id"]  # fmt: skip
    assert re.fullmatch(r"w-[0-9a-f]{16}", wid)
    workers = ok(api.get("/workers"))
    assert [x["id"] for x in workers] == [wid] and workers[0]["workflows"] == ["W"]
    is_empty(api.post("/workers/heartbeat", {"worker_id": wid}))
    assert ok(api.post("/workflow-tasks/poll", {"queue": "q", "worker_id": wid})) is None
    assert ok(api.post("/tasks/poll", {"queue": "q", "worker_id": wid})) == {"task": None}
    assert ok(api.post("/poll", {"queue": "q", "worker_id": wid})) == {"kind": None, "task": None}
    ok(
        api.post("/workflows", {"workflow_type": "W", "workflow_id": "p-1", "task_queue": "q", "input": 5}),
        201,
    )
    task = ok(api.post("/workflow-tasks/poll", {"queue": "q", "worker_id": wid}))
    assert set(task) == TASK_KEYS and task["input"] == 5 and task["attempt"] == 1
    assert task["history"][0]["event_type"] == "WorkflowStarted" and task["history"][0]["payload"] == 5
    is_empty(
        api.post(
            "/workflow-tasks/p-1/commands", {"worker_id": wid, "commands": [act("A", 1, input={"i": 1})]}
        )
    )
    got = ok(api.post("/poll", {"queue": "q", "worker_id": wid, "workflows": False}))
    assert (
        got["kind"] == "activity_task"
        and got["task"]["input"] == {"i": 1}
        and ACTIVITY_KEYS <= set(got["task"])
    )
    aid = got["task"]["id"]
    assert ok(api.post(f"/tasks/{aid}/heartbeat", {"details": [1, "two"]})) == {"cancel_requested": False}
    is_empty(api.post(f"/tasks/{aid}/complete", {"result": {"r": 1}}))
    got = ok(api.post("/poll", {"queue": "q", "worker_id": wid}))
    assert got["kind"] == "workflow_task" and got["task"]["history"][-1]["payload"]["result"] == {"r": 1}
    is_empty(
        api.post(
            "/workflow-tasks/p-1/commands",
            {"worker_id": wid, "commands": [{"type": "CompleteWorkflow", "result": 9}]},
        )
    )
    assert ok(api.get("/workflows/p-1"))["result"] == 9
    r = api.post("/workflow-tasks/p-1/commands", {"worker_id": wid, "commands": []})
    assert r.status == 409 and "error" in r.json


@pytest.mark.parametrize(
    "commands", ["x", {"type": "CompleteWorkflow"}, [{"type": "Nope"}], [{"type": "ScheduleActivity"}]]
)
def test_malformed_commands_give_the_task_back(api, engine, commands):
    w1, w2 = Worker(engine), Worker(engine)
    engine.start_workflow(workflow_type="T", workflow_id="m")
    w1.claim()
    r = api.post("/workflow-tasks/m/commands", {"worker_id": w1.id, "commands": commands})
    assert r.status == 400 and "error" in r.json
    assert [e["event_type"] for e in engine.list_events("m")] == ["WorkflowStarted"]
    assert w2.claim()["id"] == "m"  # released and dispatchable again (design.md "A bad command batch")


def test_fail_applies_retry_policy(api, engine, world, clock):
    is_empty(api.post(f"/tasks/{world.running_activity}/fail", {"error": "flaky"}))
    a = ok(api.get(f"/activities/{world.running_activity}"))
    assert a["status"] == "PENDING" and a["attempt"] == 2 and a["error"] == "flaky"
    assert a["scheduled_at"] == clock.now() + 1.0


def test_deregister(api, engine, world):
    r = ok(api.post(f"/workers/{world.worker_id}/deregister"))
    assert r == {"known": True, "leases_released": 0, "activities_released": 1}
    assert ok(api.get(f"/activities/{world.running_activity}"))["status"] == "PENDING"
    assert ok(api.get("/workers")) == []
    assert ok(api.post("/workers/w-ghost/deregister"))["known"] is False


def test_heartbeat_unknown_worker_reregisters(api):
    is_empty(
        api.post("/workers/heartbeat", {"worker_id": "w-0000000000000001", "identity": "back", "queue": "q"})
    )
    assert [w["id"] for w in ok(api.get("/workers"))] == ["w-0000000000000001"]
    is_empty(api.post("/workers/heartbeat", {"worker_id": "w-unknown-no-identity"}))
    assert len(ok(api.get("/workers"))) == 1


def test_queues(api, world):
    qs = ok(api.get("/queues"))
    d = [q for q in qs if q["queue"] == "default"][0]
    assert d["pending_activities"] == 1 and d["running_activities"] == 1 and d["workers"] == 1
    assert ok(api.get("/queues", query={"namespace": "empty"})) == []


# --- schedules ----------------------------------------------------------------------------------------


def test_schedule_endpoints(api, clock):
    body = {"name": "nightly", "workflow_type": "R", "cron_expr": "0 0 2 * * *", "timezone": "Europe/Berlin",
            "input": {"h": 24}}  # fmt: skip
    s = ok(api.post("/schedules", body), 201)
    assert s["input"] == {"h": 24} and s["paused"] is False and s["overlap_policy"] == "skip"
    assert s["next_run_at"] > clock.now() and len(s["next_runs"]) == 5
    assert s["next_runs"][0].endswith(("+02:00", "+01:00")) and "T02:00:00" in s["next_runs"][0]
    assert [x["name"] for x in ok(api.get("/schedules"))] == ["nightly"]
    assert ok(api.get("/schedules/nightly"))["cron_expr"] == "0 0 2 * * *"
    p = ok(api.patch("/schedules/nightly", {"cron_expr": "0 30 3 * * *", "overlap_policy": "allow_all"}))
    assert (
        p["cron_expr"] == "0 30 3 * * *"
        and p["overlap_policy"] == "allow_all"
        and "T03:30:00" in p["next_runs"][0]
    )
    assert ok(api.post("/schedules/nightly/pause"))["paused"] is True
    assert ok(api.get("/schedules/nightly"))["next_runs"] == []
    assert ok(api.post("/schedules/nightly/resume"))["paused"] is False
    t = ok(api.post("/schedules/nightly/trigger"), 201)
    assert t["workflow_id"].startswith("nightly-") and t["status"] == "PENDING" and t["run_id"]
    team = ok(api.post("/schedules", dict(body, namespace="team")), 201)
    assert team["namespace"] == "team"
    assert [x["namespace"] for x in ok(api.get("/schedules", query={"namespace": "team"}))] == ["team"]
    is_empty(api.delete("/schedules/nightly"))
    assert api.get("/schedules/nightly").status == 404
    assert ok(api.get("/schedules/nightly", query={"namespace": "team"}))["name"] == "nightly"


# --- namespaces and api keys ---------------------------------------------------------------------------


def test_namespace_endpoints(api, world):
    r = ok(api.post("/namespaces", {"name": "fresh"}), 201)
    assert r["name"] == "fresh" and isinstance(r["created_at"], float)
    names = [n["name"] for n in ok(api.get("/namespaces"))]
    assert names == sorted(names) and {"main", "team", "fresh"} <= set(names)
    st = ok(api.get("/namespaces/main"))
    assert (
        st["namespace"] == "main"
        and st["total_workflows"] == 2
        and st["running"] == 1
        and st["completed"] == 1
    )
    assert st["schedules"] == 1 and st["workers"] == 1
    is_empty(api.delete("/namespaces/fresh"))
    assert api.get("/namespaces/fresh").status == 404
    assert api.delete("/namespaces/main").status == 400


def test_api_key_endpoints(api):
    r = ok(api.post("/api-keys", {"label": "ci"}), 201)
    assert re.fullmatch(r"assay_[0-9a-f]{64}", r["plaintext"]) and r["prefix"] == r["plaintext"][:14] + "..."
    again = ok(api.post("/api-keys", {"label": "ci", "idempotent": True}), 200)
    assert again["prefix"] == r["prefix"] and "plaintext" not in again
    keys = ok(api.get("/api-keys"))
    assert [k["prefix"] for k in keys] == [r["prefix"]] and "plaintext" not in keys[0]
    assert api.delete(f"/api-keys/{r['prefix']}").status == 204
    assert ok(api.get("/api-keys")) == []


# --- both prefixes -------------------------------------------------------------------------------------


def fill(path: str) -> str:
    return (
        path.replace("/activities/{id}", "/activities/999999")
        .replace("/tasks/{id}", "/tasks/999999")
        .replace("{id}", "ghost")
        .replace("{name}", "ghost")
        .replace("{prefix}", "assay_00000000...")
    )


def test_every_route_answers_identically_under_both_prefixes(app, client):
    specs = [s for s in app.router_specs if not s.stream]
    assert len(specs) >= 40
    for spec in specs:
        path = fill(spec.path)
        a = client.request(spec.method, path, prefix="/api/v1")
        b = client.request(spec.method, path, prefix="/api/v1/engine/workflow")
        assert a.status == b.status, (spec.method, spec.path, a.status, b.status)
        assert (
            a.status != 404
            or (a.json or {}).get("error", "").startswith("not found: ")
            and "no such route" not in a.text
        )
        assert a.status < 500, (spec.method, spec.path, a.text)
        if a.status >= 400:
            assert a.json["error"] == b.json["error"].replace("/api/v1/engine/workflow", "/api/v1")


# --- lenient bodies (design.md "Lenient empty bodies") ----------------------------------------------------------------------

EMPTY_FORMS = [
    (b"[]", "application/json"),
    (b"{}", "application/json"),
    (b"null", "application/json"),
    (b"", "application/json"),
    (b"", None),
    (b"{}", None),
    (b"[]", "text/plain"),
    (b"  \n", "application/json"),
]


def _fresh_running_activity(engine, world, i):
    seq = 1000 + i
    engine.schedule_activity("wf-1", ScheduleActivity(seq=seq, name="fresh", task_queue=f"fresh-{seq}"))
    return engine.claim_activity_task(f"fresh-{seq}", world.worker_id)["id"]


OPTIONAL_BODY = {
    "signal": ("POST", lambda e, w, i: "/workflows/wf-1/signal/s"),
    "cancel": ("POST", lambda e, w, i: "/workflows/wf-1/cancel"),
    "terminate": ("POST", lambda e, w, i: "/workflows/" + e.start_workflow(workflow_type="T", workflow_id=f"t{i}")["id"] + "/terminate"),
    "continue-as-new": ("POST", lambda e, w, i: "/workflows/wf-1/continue-as-new"),
    "heartbeat": ("POST", lambda e, w, i: f"/tasks/{w.running_activity}/heartbeat"),
    "complete": ("POST", lambda e, w, i: f"/tasks/{_fresh_running_activity(e, w, i)}/complete"),
    "fail": ("POST", lambda e, w, i: f"/tasks/{_fresh_running_activity(e, w, i)}/fail"),
    "patch-schedule": ("PATCH", lambda e, w, i: "/schedules/s1"),
    "pause": ("POST", lambda e, w, i: "/schedules/s1/pause"),
    "resume": ("POST", lambda e, w, i: "/schedules/s1/resume"),
    "trigger": ("POST", lambda e, w, i: "/schedules/s1/trigger"),
    "api-keys": ("POST", lambda e, w, i: "/api-keys"),
}  # fmt: skip


@pytest.mark.parametrize("endpoint", list(OPTIONAL_BODY))
def test_all_optional_bodies_accept_empty_forms(client, engine, world, endpoint):
    method, target = OPTIONAL_BODY[endpoint]
    for i, (raw, content_type) in enumerate(EMPTY_FORMS):
        r = client.request(method, target(engine, world, i), raw=raw, content_type=content_type)
        assert 200 <= r.status < 300, (endpoint, raw, content_type, r.status, r.text)


def test_json_body_without_content_type_is_parsed(api):
    r = api.request(
        "POST",
        "/workflows",
        raw=b'{"workflow_type": "T", "workflow_id": "nct", "input": [1]}',
        content_type=None,
    )
    assert r.status == 201
    assert ok(api.get("/workflows/nct"))["input"] == [1]


def test_unknown_fields_are_ignored(api):
    ok(api.post("/workflows", {"workflow_type": "T", "workflow_id": "x", "surprise": {"a": 1}}), 201)


# --- SSE stream (in-process) -----------------------------------------------------------------------------


def open_stream(app, path, query=""):
    import io

    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "t", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"] = int(status.split()[0])
        got["headers"] = dict(headers)

    it = app(environ, start_response)
    return got["status"], got["headers"], it


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v1/engine/workflow"])
def test_sse_stream_delivers_events_and_releases_its_hold(app, engine, prefix):
    import json

    status, headers, it = open_stream(app, prefix + "/events/stream", "namespace=main")
    try:
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
        assert headers["Cache-Control"] == "no-cache"
        first = next(iter(it))
        assert first.startswith(b": connected")
        assert engine.held_requests == 1
        engine.start_workflow(workflow_type="T", workflow_id="sse-1", namespace="other")  # filtered out
        engine.start_workflow(workflow_type="T", workflow_id="sse-2")
        frame = next(iter(it)).decode()
        lines = frame.strip().split("\n")
        assert lines[0] == "event: workflow_started"
        data = json.loads(lines[1][len("data: ") :])
        assert data["workflow_id"] == "sse-2" and data["event_type"] == "workflow_started"
        assert data["payload"] == {"namespace": "main"}  # a JSON object, not JSON text
    finally:
        it.close()
    assert engine.held_requests == 0 and engine.broadcaster.count == 0


def test_sse_over_the_cap_is_503_with_retry_after(store, clock, settings):
    from assay.api import make_app
    from assay.engine import Engine

    e = Engine(store, clock=clock, settings=settings.replace(sse_max_streams=1))
    app = make_app(e)
    s1, _, it1 = open_stream(app, "/api/v1/events/stream")
    try:
        next(iter(it1))
        s2, h2, it2 = open_stream(app, "/api/v1/events/stream")
        body = b"".join(it2)
        assert s2 == 503 and int(h2["Retry-After"]) > 0 and b'"error"' in body
    finally:
        it1.close()
        e.notifier.close()
    s3, _, it3 = open_stream(app, "/api/v1/events/stream")
    it3.close()
    assert s1 == 200 and s3 == 200


def test_search_with_huge_numbers_and_odd_keys(api, world):
    for q in ('{"n": 18446744073709551616}', '{"n": -1e300}', '{"a.b": 1}', '{"x\\"y": 1}', '{"": 1}'):
        assert ok(api.get("/workflows", query={"search_attrs": q})) == [], q
    ok(
        api.post(
            "/workflows",
            {"workflow_type": "T", "workflow_id": "big", "search_attributes": {"n": 18446744073709551616}},
        ),
        201,
    )
    assert [
        w["id"] for w in ok(api.get("/workflows", query={"search_attrs": '{"n": 18446744073709551616}'}))
    ] == ["big"]
