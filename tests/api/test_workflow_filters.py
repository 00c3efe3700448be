"""GET /workflows filters behind the Temporal visibility subset: id, several statuses, terminated, continued
(SQLite and Postgres through the store fixture), the terminated flag on records, and ctx:cancel(reason)."""

from __future__ import annotations

import pytest

from tests.engine.support import Worker, start


@pytest.fixture
def world(engine):
    w = Worker(engine)
    for wid in ("run", "term", "fail", "done", "cont", "cancel"):
        start(engine, wid)
        w.run(wid, {"type": "ScheduleTimer", "seq": 1, "duration_secs": 999})
    engine.terminate("term", "ops")
    return w


def names(resp) -> list[str]:
    assert resp.status == 200, resp.text
    return sorted(r["id"] for r in resp.json)


def settle(engine, w):
    """Finish fail / done / cont / cancel through commands (a signal makes each dispatchable again)."""
    for wid, cmd in (
        ("fail", {"type": "FailWorkflow", "error": "bad"}),
        ("done", {"type": "CompleteWorkflow", "result": {"ok": 1}}),
        ("cont", {"type": "ContinueAsNew", "input": {}, "workflow_id": "cont-2"}),
        ("cancel", {"type": "CancelWorkflow", "reason": "not needed"}),
    ):
        engine.signal(wid, "go", None)
        w.run(wid, cmd)


def test_filters(api, engine, world):
    settle(engine, world)
    start(engine, "pend")
    assert names(api.get("/workflows", query={"id": "term"})) == ["term"]
    assert names(api.get("/workflows", query={"status": "PENDING,RUNNING"})) == ["cont-2", "pend", "run"]
    assert names(api.get("/workflows", query={"status": "FAILED", "terminated": "true"})) == ["term"]
    assert names(api.get("/workflows", query={"status": "FAILED", "terminated": "false"})) == ["fail"]
    assert names(api.get("/workflows", query={"continued": "true"})) == ["cont"]
    assert names(api.get("/workflows", query={"status": "COMPLETED", "continued": "false"})) == ["done"]
    assert "done" in names(api.get("/workflows", query={"continued": "false"}))
    recs = {r["id"]: r for r in api.get("/workflows").json}
    assert recs["term"]["terminated"] is True and recs["fail"]["terminated"] is False
    assert recs["cancel"]["status"] == "CANCELLED" and recs["cancel"]["error"] == "not needed"
    (ev,) = [e for e in engine.list_events("cancel") if e["event_type"] == "WorkflowCancelled"]
    assert ev["payload"] == {"reason": "not needed"}


@pytest.mark.parametrize(
    "query,fragment",
    [
        ({"terminated": "maybe"}, "query parameter 'terminated' must be true or false"),
        ({"continued": "2"}, "query parameter 'continued' must be true or false"),
        ({"status": "RUNNING,SLEEPING"}, "unknown status 'SLEEPING'"),
    ],
)
def test_bad_filters_are_400(api, world, query, fragment):
    r = api.get("/workflows", query=query)
    assert r.status == 400 and fragment in r.json["error"]
