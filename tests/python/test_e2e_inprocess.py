"""A worker embedded in a program (listen in a thread, stopped through `stop=`) and the management
functions, against a live engine."""

from __future__ import annotations

import threading

import pytest

from assay import errors, workflow
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


@workflow.define("Embedded")
def embedded(ctx, input):
    ctx.upsert_search_attributes({"who": input["who"]})
    ctx.register_query("progress", lambda: {"stage": "waiting"})
    got = ctx.wait_for_signal("go", timeout=30)
    return {"hello": input["who"], "got": got, "info": [ctx.info.workflow_type, ctx.info.queue]}


def test_embedded_worker_and_management_functions(engine):
    workflow.connect(engine.url, wait_secs=5)
    stop = threading.Event()
    out: dict = {}
    t = threading.Thread(
        target=lambda: out.setdefault(
            "rc", workflow.listen(queue="py-embedded", stop=stop, poll_wait_secs=5)
        ),
        daemon=True,
    )
    t.start()
    try:
        run = workflow.start("Embedded", {"who": "ada"}, workflow_id="emb-1", task_queue="py-embedded")
        assert run["workflow_id"] == "emb-1"
        wait_until(lambda: workflow.get_state("emb-1", "progress") if _has_state("emb-1") else None, 15)
        assert workflow.get_state("emb-1", "progress")["value"] == {"stage": "waiting"}
        workflow.signal("emb-1", "go", {"n": 1})
        rec = workflow.wait("emb-1", timeout=20)
        assert rec["status"] == "COMPLETED"
        assert rec["result"] == {"hello": "ada", "got": {"n": 1}, "info": ["Embedded", "py-embedded"]}
        assert workflow.describe("emb-1")["search_attributes"]["who"] == "ada"
        assert [w["id"] for w in workflow.list(workflow_type="Embedded")] == ["emb-1"]
        assert workflow.get_events("emb-1")[-1]["event_type"] == "WorkflowCompleted"
        assert workflow.list_children("emb-1") == []
        with pytest.raises(errors.Conflict):
            workflow.cancel("emb-1")
        with pytest.raises(errors.NotFound):
            workflow.describe("no-such-workflow")
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive() and out["rc"] is True


def _has_state(wid: str) -> bool:
    try:
        workflow.get_state(wid, "progress")
        return True
    except errors.NotFound:
        return False
