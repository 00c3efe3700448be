"""Bad input on the new routes and commands: clear 4xx JSON errors, one-line CLI errors with exit 64."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from assay.cli import cli
from tests.wsgi import Client


@pytest.fixture
def api(app):
    return Client(app)


def _running(api, engine, wf_id="a1"):
    assert (
        api.request(
            "POST", "/workflows", {"workflow_type": "T", "workflow_id": wf_id, "task_queue": "q"}
        ).status
        == 201
    )
    wid = api.request("POST", "/workers/register", {"identity": "i", "queue": "q", "build_id": "b1"}).json[
        "worker_id"
    ]
    engine.claim_workflow_task("q", wid)
    return wid


def test_reset_route_validates_its_body(api, engine):
    _running(api, engine)
    for body, word in [
        ({}, "exactly one"),
        ({"to_event": 1, "to_last_task": True}, "exactly one"),
        ({"to_event": "3"}, "to_event"),
        ({"to_event": 0}, "to_event"),
        ({"to_event": 50}, "1..1"),
        ({"to_last_task": "yes"}, "to_last_task"),
    ]:
        r = api.request("POST", "/workflows/a1/reset", body)
        assert r.status == 400 and word in r.json["error"], (body, r.json)
    assert api.request("POST", "/workflows/nope/reset", {"to_event": 1}).status == 404
    r = api.request("POST", "/workflows/a1/reset", {"to_last_task": True})
    assert r.status == 201 and r.json["reset_from"] == "a1"
    assert api.request("GET", "/workflows/a1").json["reset_to"] == r.json["id"]


def test_fail_task_route_and_list_filters(api, engine):
    wid = _running(api, engine)
    assert api.request("POST", "/workflow-tasks/a1/fail", {"error": "x"}).status == 400  # no worker_id
    r = api.request("POST", "/workflow-tasks/a1/fail", {"worker_id": "someone-else", "error": "x"})
    assert r.status == 409
    r = api.request("POST", "/workflow-tasks/a1/fail", {"worker_id": wid, "error": "diverged"})
    assert r.status == 200 and r.json == {"failures": 1, "stuck": False}
    assert api.request("GET", "/workflows", query={"stuck": "maybe"}).status == 400
    assert api.request("GET", "/workflows", query={"stuck": "false"}).json[0]["id"] == "a1"
    assert api.request("GET", "/workflows", query={"stuck": "true"}).json == []
    assert [w["id"] for w in api.request("GET", "/workflows", query={"build_id": "b1"}).json] == ["a1"]
    rec = api.request("GET", "/workflows/a1").json
    assert rec["build_ids"] == ["b1"] and rec["stuck"] is None and rec["reset_to"] is None
    r = api.request("POST", "/workers/register", {"identity": "i", "queue": "q", "build_id": "x" * 129})
    assert r.status == 400 and "build_id" in r.json["error"]
    workers = api.request("GET", "/workers").json
    assert [w["build_id"] for w in workers] == ["b1"]


def _cli(*args, input=None):
    return CliRunner().invoke(
        cli, ["--engine-url", "http://127.0.0.1:9", *args], input=input, prog_name="assay"
    )


def test_replay_usage_errors(tmp_path):
    worker = tmp_path / "w.lua"
    worker.write_text('local workflow = require("assay.workflow")\nworkflow.listen()\n')
    r = _cli("replay", str(worker))
    assert r.exit_code == 64 and "--history FILE" in r.output
    r = _cli("replay", str(worker), "--status", "RUNNING", "--history", "x")
    assert r.exit_code == 64 and "--status needs --type" in r.output
    bad = tmp_path / "h.json"
    bad.write_text("{nope")
    r = _cli("replay", str(worker), "--history", str(bad))
    assert r.exit_code == 64 and "is not JSON" in r.output
    bad.write_text(json.dumps([{"seq": 1}]))
    r = _cli("replay", str(worker), "--history", str(bad))
    assert r.exit_code == 64 and "not an exported history" in r.output
    r = _cli("replay", str(worker), "--history", str(tmp_path / "missing.json"))
    assert r.exit_code == 64 and "cannot read" in r.output
    other = tmp_path / "w.txt"
    other.write_text("")
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"workflow": {"id": "a", "workflow_type": "T"}, "events": []}))
    r = _cli("replay", str(other), "--history", str(good))
    assert r.exit_code == 64 and ".lua or .py" in r.output
    broken = tmp_path / "broken.lua"
    broken.write_text("this is not lua")
    r = _cli("replay", str(broken), "--history", str(good))
    assert r.exit_code == 1 and "does not load" in r.output
    r = _cli("replay", str(worker), "--history", str(good), "-o", "json")  # no handler for T
    assert r.exit_code == 1 and "defines no workflow type 'T'" in r.output


def test_reset_cli_needs_exactly_one_point():
    r = _cli("workflow", "reset", "a1")
    assert r.exit_code == 64 and "exactly one" in r.output
    r = _cli("workflow", "reset", "a1", "--to-event", "2", "--to-last-task")
    assert r.exit_code == 64
