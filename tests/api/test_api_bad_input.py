"""Bad input for every endpoint: a 4xx with a JSON {"error": ...} body, never a 500, and nothing changed
in the store (a dump of every table is compared before and after)."""

from __future__ import annotations

import pytest

from assay.api import make_app
from tests.api.conftest import dump
from tests.wsgi import Client

MALFORMED = [
    b"{",
    b'{"a": }',
    b"nul",
    b"\xff\xfe{}",
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b"[" * 5000,
    b'{"a": 1e999}',
    b'"\\ud800"',
    b'{"a": "x\\u0000y"}',  # NUL cannot be stored portably (PostgreSQL text/jsonb refuse it)
    b'{"a\\u0000": 1}',
]


def check(client, store, cases):
    """cases: (method, path, kwargs, expected status or None for any 4xx)."""
    for method, path, kw, expected in cases:
        before = dump(store)
        r = client.request(method, path, **kw)
        where = f"{method} {path} {kw} -> {r.status} {r.text[:200]}"
        assert 400 <= r.status < 500, where
        if expected is not None:
            assert r.status == expected, where
        assert r.headers.get("Content-Type", "").startswith("application/json"), where
        body = r.json
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
        assert dump(store) == before, f"store changed: {where}"


def body(obj):
    return {"body": obj}


def raw(data, content_type="application/json"):
    return {"raw": data, "content_type": content_type}


def malformed(method, path):
    return [(method, path, raw(m), 400) for m in MALFORMED]


def wrong_type_cases(method, path, base, fields):
    """Each field of `base` replaced by a value of the wrong type -> 400."""
    out = []
    for field, bad_values in fields.items():
        for v in bad_values:
            out.append((method, path, body(dict(base, **{field: v})), 400))
    return out


NOT_STR = [1, True, ["x"], {"a": 1}]
NOT_NUM = ["1", True, [1], {"a": 1}]
NOT_INT = ["1", 1.5, True, [1]]
NOT_BOOL = ["true", 1, [True]]
NOT_OBJ_BODIES = [1, "s", True, [1], ["a", "b"]]

START = {"workflow_type": "T", "workflow_id": "new-1"}
ACT = {"name": "a", "seq": 77, "task_queue": "q"}
REG = {"identity": "me", "queue": "q"}
POLL = {"queue": "default", "worker_id": "w-1"}
SCHED = {"name": "s-new", "workflow_type": "R", "cron_expr": "0 * * * * *"}


def workflows_cases(w):
    return [
        *malformed("POST", "/workflows"),
        *[("POST", "/workflows", body(b), 400) for b in NOT_OBJ_BODIES],
        ("POST", "/workflows", body({}), 400),
        ("POST", "/workflows", body([]), 400),
        ("POST", "/workflows", body(None), 400),
        ("POST", "/workflows", raw(b""), 400),
        ("POST", "/workflows", body({"workflow_type": "T"}), 400),
        ("POST", "/workflows", body({"workflow_id": "x"}), 400),
        ("POST", "/workflows", body(dict(START, workflow_id="")), 400),
        ("POST", "/workflows", body(dict(START, workflow_id="   ")), 400),
        ("POST", "/workflows", body(dict(START, workflow_id="x" * 600)), 400),
        ("POST", "/workflows", body(dict(START, workflow_id="orders/42")), 400),  # could never be addressed
        ("POST", "/workflows", body(dict(START, workflow_id="wf-1")), 409),
        ("POST", "/workflows", body(dict(START, workflow_id="done", namespace="team")), 409),
        *wrong_type_cases(
            "POST",
            "/workflows",
            START,
            {"workflow_type": NOT_STR, "workflow_id": NOT_STR, "namespace": NOT_STR, "task_queue": NOT_STR},
        ),  # fmt: skip
    ]


def list_cases(w):
    return [
        ("GET", "/workflows", {"query": {"limit": "abc"}}, 400),
        ("GET", "/workflows", {"query": {"limit": "-1"}}, 400),
        ("GET", "/workflows", {"query": {"limit": "1.5"}}, 400),
        ("GET", "/workflows", {"query": {"limit": "99999999"}}, 400),
        ("GET", "/workflows", {"query": {"offset": "x"}}, 400),
        ("GET", "/workflows", {"query": {"offset": "-3"}}, 400),
        ("GET", "/workflows", {"query": {"status": "DONE"}}, 400),
        ("GET", "/workflows", {"query": {"status": "TERMINATED"}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": "[1]"}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": '"tier"'}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": "{tier: gold}"}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": '{"a": NaN}'}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": "[" * 5000}}, 400),
        ("GET", "/workflows", {"query": {"search_attrs": '{"n": "\\u0000"}'}}, 400),
        ("GET", "/workflows/wf-1/events", {"query": {"after_seq": "x"}}, 400),
    ]


def workflow_id_cases(w):
    return [
        ("GET", "/workflows/ghost", {}, 404),
        ("GET", "/workflows/wf\x001", {}, 400),  # a decoded %00 in the path
        ("POST", "/workflows/wf-1/signal/s\x00", body({}), 400),
        ("GET", "/workflows", {"query": {"type": "T\x00"}}, 400),
        ("GET", "/workflows/ghost/events", {}, 404),
        ("GET", "/workflows/ghost/children", {}, 404),
        ("GET", "/workflows/ghost/state", {}, 404),
        ("GET", "/workflows/ghost/state/q", {}, 404),
        ("GET", "/workflows/wf-1/state/nope", {}, 404),
        ("GET", "/workflows/done/state", {}, 404),
        ("POST", "/workflows/ghost/signal/s", body({"payload": 1}), 404),
        ("POST", "/workflows/done/signal/s", body({"payload": 1}), 409),
        *malformed("POST", "/workflows/wf-1/signal/s"),
        *[("POST", "/workflows/wf-1/signal/s", body(b), 400) for b in NOT_OBJ_BODIES],
        ("POST", "/workflows/ghost/cancel", {}, 404),
        ("POST", "/workflows/done/cancel", {}, 409),
        *malformed("POST", "/workflows/wf-1/cancel"),
        *[("POST", "/workflows/wf-1/cancel", body({"reason": v}), 400) for v in NOT_STR],
        ("POST", "/workflows/ghost/terminate", {}, 404),
        ("POST", "/workflows/done/terminate", {}, 409),
        *malformed("POST", "/workflows/wf-1/terminate"),
        *[("POST", "/workflows/wf-1/terminate", body({"reason": v}), 400) for v in NOT_STR],
        ("POST", "/workflows/ghost/continue-as-new", body({}), 404),
        ("POST", "/workflows/wf-1/continue-as-new", body({"workflow_id": "done"}), 409),
        *[("POST", "/workflows/wf-1/continue-as-new", body({"workflow_id": v}), 400) for v in NOT_STR],
        ("POST", "/workflows/wf-1/continue-as-new", body({"workflow_id": "a/b"}), 400),
        *malformed("POST", "/workflows/wf-1/continue-as-new"),
    ]


def activity_cases(w):
    return [
        ("POST", "/workflows/ghost/activities", body(ACT), 404),
        ("POST", "/workflows/done/activities", body(ACT), 409),
        *malformed("POST", "/workflows/wf-1/activities"),
        ("POST", "/workflows/wf-1/activities", body({}), 400),
        ("POST", "/workflows/wf-1/activities", body({"name": "a"}), 400),
        *wrong_type_cases(
            "POST",
            "/workflows/wf-1/activities",
            ACT,
            {
                "name": NOT_STR,
                "seq": NOT_INT + [-1],
                "task_queue": NOT_STR,
                "max_attempts": NOT_INT + [-1],
                "initial_interval_secs": NOT_NUM + [-1],
                "backoff_coefficient": NOT_NUM + [0.5],
                "start_to_close_secs": NOT_NUM + [0, -5],
                "heartbeat_timeout_secs": NOT_NUM + [0],
                "maximum_interval_secs": NOT_NUM,
                "non_retryable_errors": ["x", [1], {"a": 1}],
            },
        ),  # fmt: skip
        ("GET", "/activities/abc", {}, 400),
        ("GET", "/activities/1.5", {}, 400),
        ("GET", "/activities/-1", {}, 400),
        ("GET", "/activities/99999999999999999999999", {}, 400),
        ("GET", "/activities/999999", {}, 404),
    ]


def worker_cases(w):
    return [
        *malformed("POST", "/workers/register"),
        ("POST", "/workers/register", body({}), 400),
        ("POST", "/workers/register", body({"identity": "me"}), 400),
        *[("POST", "/workers/register", body(b), 400) for b in NOT_OBJ_BODIES],
        *wrong_type_cases(
            "POST",
            "/workers/register",
            REG,
            {
                "identity": NOT_STR,
                "queue": NOT_STR,
                "namespace": NOT_STR,
                "workflows": ["x", [1]],
                "activities": ["x", [None]],
                "max_concurrent_workflows": NOT_INT,
                "heartbeat_interval_secs": NOT_NUM + [0, -1],
            },
        ),  # fmt: skip
        *malformed("POST", f"/workers/{w.worker_id}/deregister"),
        *malformed("POST", "/workers/heartbeat"),
        ("POST", "/workers/heartbeat", body({}), 400),
        *[("POST", "/workers/heartbeat", body({"worker_id": v}), 400) for v in NOT_STR],
    ]


def task_cases(w):
    run, pend, done = w.running_activity, w.pending_activity, w.completed_activity
    out = []
    for path in ("/tasks/poll", "/workflow-tasks/poll", "/poll"):
        out += [
            *malformed("POST", path),
            ("POST", path, body({}), 400),
            ("POST", path, body({"queue": "q"}), 400),
            *wrong_type_cases(
                "POST", path, POLL, {"queue": NOT_STR, "worker_id": NOT_STR, "wait_secs": NOT_NUM + [-1, 61]}
            ),
        ]
    out += wrong_type_cases("POST", "/poll", POLL, {"workflows": NOT_BOOL, "activities": NOT_BOOL})
    for verb in ("complete", "fail", "heartbeat"):
        out += [
            ("POST", f"/tasks/abc/{verb}", body({}), 400),
            ("POST", f"/tasks/1.0/{verb}", body({}), 400),
            ("POST", f"/tasks/-4/{verb}", body({}), 400),
            ("POST", f"/tasks/999999/{verb}", body({}), 404),
            ("POST", f"/tasks/{pend}/{verb}", body({}), 409),  # not RUNNING
            ("POST", f"/tasks/{done}/{verb}", body({}), 409),
            ("POST", f"/tasks/{run}/{verb}", body({"worker_id": "w-someone-else"}), 409),
            *malformed("POST", f"/tasks/{run}/{verb}"),
            *[("POST", f"/tasks/{run}/{verb}", body(b), 400) for b in NOT_OBJ_BODIES],
            *[("POST", f"/tasks/{run}/{verb}", body({"worker_id": v}), 400) for v in NOT_STR],
        ]
    out += [("POST", f"/tasks/{run}/fail", body({"non_retryable": v}), 400) for v in NOT_BOOL]
    return out


def command_cases(w):
    path = "/workflow-tasks/wf-1/commands"
    good = {"worker_id": w.worker_id, "commands": []}
    return [
        *malformed("POST", path),
        ("POST", path, body({}), 400),
        ("POST", path, body({"commands": []}), 400),
        *[("POST", path, body({"worker_id": v, "commands": []}), 400) for v in NOT_STR],
        *[("POST", path, body(dict(good, commands=v)), 400) for v in ("x", {"type": "CompleteWorkflow"}, 5)],
        ("POST", path, body(dict(good, commands=[{"type": "Nope"}])), 400),
        ("POST", path, body(dict(good, commands=[5])), 400),
        (
            "POST",
            path,
            body(
                dict(
                    good,
                    commands=[{"type": "StartChildWorkflow", "workflow_type": "K", "workflow_id": "k/1"}],
                )
            ),
            400,
        ),
        ("POST", path, body(dict(good, commands=[{"type": "ContinueAsNew", "workflow_id": "k/2"}])), 400),
        (
            "POST",
            path,
            body(dict(good, worker_id="w-intruder", commands=[{"type": "CompleteWorkflow"}])),
            409,
        ),
        ("POST", path, body(good), 409),  # nobody holds the lease right now
        ("POST", "/workflow-tasks/ghost/commands", body(good), 404),
        ("POST", "/workflow-tasks/done/commands", body(good), 409),
    ]


def schedule_cases(w):
    return [
        *malformed("POST", "/schedules"),
        ("POST", "/schedules", body({}), 400),
        *[("POST", "/schedules", body(b), 400) for b in NOT_OBJ_BODIES],
        ("POST", "/schedules", body(dict(SCHED, name="s1")), 409),
        ("POST", "/schedules", body(dict(SCHED, name="nightly/eu")), 400),
        ("POST", "/schedules", body(dict(SCHED, cron_expr="every day")), 400),
        ("POST", "/schedules", body(dict(SCHED, cron_expr="* * *")), 400),
        ("POST", "/schedules", body(dict(SCHED, timezone="Mars/Olympus")), 400),
        ("POST", "/schedules", body(dict(SCHED, timezone="utc/x")), 400),
        ("POST", "/schedules", body(dict(SCHED, overlap_policy="sometimes")), 400),
        *wrong_type_cases(
            "POST",
            "/schedules",
            SCHED,
            {
                "name": NOT_STR,
                "workflow_type": NOT_STR,
                "cron_expr": NOT_STR,
                "timezone": NOT_STR,
                "overlap_policy": NOT_STR,
                "task_queue": NOT_STR,
                "namespace": NOT_STR,
                "paused": NOT_BOOL,
            },
        ),  # fmt: skip
        ("GET", "/schedules/ghost", {}, 404),
        ("GET", "/schedules/s1", {"query": {"namespace": "team"}}, 404),
        ("PATCH", "/schedules/ghost", body({"input": 1}), 404),
        *malformed("PATCH", "/schedules/s1"),
        *[("PATCH", "/schedules/s1", body(b), 400) for b in NOT_OBJ_BODIES],
        ("PATCH", "/schedules/s1", body({"cron_expr": "nope"}), 400),
        ("PATCH", "/schedules/s1", body({"timezone": "Nowhere/City"}), 400),
        ("PATCH", "/schedules/s1", body({"overlap_policy": "maybe"}), 400),
        *[
            ("PATCH", "/schedules/s1", body({k: 5}), 400)
            for k in ("cron_expr", "timezone", "task_queue", "overlap_policy")
        ],
        ("DELETE", "/schedules/ghost", {}, 404),
        ("POST", "/schedules/ghost/pause", {}, 404),
        ("POST", "/schedules/ghost/resume", {}, 404),
        ("POST", "/schedules/ghost/trigger", {}, 404),
        *malformed("POST", "/schedules/s1/trigger"),
    ]


def admin_cases(w):
    return [
        *malformed("POST", "/namespaces"),
        ("POST", "/namespaces", body({}), 400),
        ("POST", "/namespaces", body({"name": ""}), 400),
        *[("POST", "/namespaces", body({"name": v}), 400) for v in NOT_STR],
        ("POST", "/namespaces", body({"name": "team"}), 409),
        ("POST", "/namespaces", body({"name": "a/b"}), 400),
        ("POST", "/namespaces", body({"name": "main"}), 409),
        ("GET", "/namespaces/ghost", {}, 404),
        ("DELETE", "/namespaces/ghost", {}, 404),
        ("DELETE", "/namespaces/main", {}, 400),
        *malformed("POST", "/api-keys"),
        *[("POST", "/api-keys", body({"label": v}), 400) for v in NOT_STR],
        *[("POST", "/api-keys", body({"idempotent": v}), 400) for v in NOT_BOOL],
        *[("POST", "/api-keys", body(b), 400) for b in NOT_OBJ_BODIES],
        ("DELETE", "/api-keys/assay_00000000...", {}, 404),
        ("GET", "/no/such/route", {}, 404),
        ("GET", "/workflows/", {}, 404),
        ("DELETE", "/workflows/wf-1", {}, 405),
        ("PUT", "/workflows", body(START), 405),
    ]


GROUPS = {
    "start": workflows_cases,
    "list": list_cases,
    "workflow-id": workflow_id_cases,
    "activities": activity_cases,
    "workers": worker_cases,
    "tasks": task_cases,
    "commands": command_cases,
    "schedules": schedule_cases,
    "admin": admin_cases,
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_bad_input_is_a_4xx_json_error_and_changes_nothing(client, store, world, group):
    check(client, store, GROUPS[group](world))


def test_non_active_namespace_delete_is_refused(client, engine, store, world):
    engine.start_workflow(workflow_type="T", workflow_id="team-wf", namespace="team")
    check(client, store, [("DELETE", "/namespaces/team", {}, 409)])


@pytest.fixture
def small(engine):
    return Client(make_app(engine, engine.settings.replace(max_body_bytes=1024)))


def test_oversized_bodies_are_413(app, small, store, world):
    big = b'{"pad": "' + b"x" * 2000 + b'"}'
    specs = [s for s in app.router_specs if s.method in ("POST", "PATCH")]
    assert len(specs) >= 20
    cases = []
    for spec in specs:
        path = spec.path.replace("{id}", "wf-1" if "workflow" in spec.path else str(world.running_activity))
        path = path.replace("{name}", "s1" if "schedules" in path else "go")
        cases.append((spec.method, path, raw(big), 413))
    check(small, store, cases)
    ok = small.post("/workflows", {"workflow_type": "T", "workflow_id": "fits", "input": "x" * 900})
    assert ok.status == 201


def test_oversized_body_without_content_length(small, store, world):
    before = dump(store)
    # a chunked request has no Content-Length: the body is read only up to the limit
    r = small.request("POST", "/workflows", raw=b'{"workflow_type": "T", "workflow_id": "' + b"y" * 2000 + b'"}',
                      headers={"Content-Length": ""})  # fmt: skip
    assert r.status == 413 and "error" in r.json
    assert dump(store) == before
