"""End to end: an upstream-style worker and management script run unchanged."""

from __future__ import annotations

import json

import pytest

from tests.lua.conftest import assay_run
from tests.lua.e2e import WORKERS, Worker

pytestmark = pytest.mark.e2e


def test_upstream_surface_worker_and_management(engine, logdir):
    w = Worker(WORKERS / "upstream_style.lua", engine.url, logdir)
    w.wait_ready()
    try:
        r = assay_run(str(WORKERS / "drive_order.lua"), "order-42", env={"ASSAY_ENGINE_URL": engine.url})
        assert r.returncode == 0, r.stderr + w.log()
        out = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        assert w.stop() == 0, w.log()
    assert out["started"]["workflow_id"] == "order-42" and out["started"]["status"] == "PENDING"
    assert out["state"] == {"status": "awaiting_payment", "order": "order-42"}
    assert out["status"] == "COMPLETED", out
    res = out["result"]
    assert res["total"] == 17 and res["labels"] == ["label-1", "label-2"]
    assert res["note"] == "sent to ada@example.com" and res["paid_by"] == "ada@example.com"
    assert isinstance(res["stamp"], int)
    assert (
        out["listed"] == 1
        and out["first_event"] == "WorkflowStarted"
        and out["last_event"] == "WorkflowCompleted"
    )
    assert out["children"] == ["notify-order-42", "COMPLETED"] and out["missing"] is True


def test_management_functions(engine):
    r = assay_run(str(WORKERS / "manage_all.lua"), env={"ASSAY_ENGINE_URL": engine.url})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["start"]["workflow_id"] == "m-1" and out["start_default_id"] is True
    assert out["duplicate"] == [False, "409"]
    assert out["describe"] == ["PENDING", {"a": 1}, "test", "manage"] and out["describe_missing"] is True
    assert out["signal"] is True and out["signal_no_payload"] is True
    assert out["events"] == ["WorkflowStarted", "SignalReceived", "SignalReceived"]
    assert out["signal_payload"] == {"n": 1} and out["state_missing"] is True
    assert out["list"] == 1 and out["list_status"] == 1 and out["children"] == 0
    assert out["cancel"] is True and out["after_cancel"] == "CANCELLED"
    assert out["terminate"] is True and out["terminated"] == ["FAILED", "enough"]
    assert out["continued"] == ["PENDING", {"v": 2}, "COMPLETED"]
    assert out["sched_create"] == ["m-sched", "0 0 3 * * *", False]
    assert out["sched_list"] == 1 and out["sched_describe"] == "Idle" and out["sched_missing"] is True
    assert (
        out["sched_patch"] == "0 30 3 * * *" and out["sched_pause"] is True and out["sched_resume"] is False
    )
    assert out["sched_trigger"] == ["string", {"from": "cron"}]
    assert out["sched_delete"] is True and out["sched_after_delete"] is True
    assert out["sched_validation"] == [False, True]
    assert out["ns_create"] is True and "m-ns" in out["ns_list"] and "main" in out["ns_list"]
    assert out["ns_stats"] == 0 and out["ns_describe"] == "m-ns" and out["ns_delete"] is True
    assert out["workers"] == "table" and out["queues"] == "table"
    assert out["key"] == [True, "m-label"] and out["key_idempotent"] == [True, True] and out["key_list"] >= 1
    assert out["key_delete"] is True and out["key_delete_again"] is False
    assert out["bad_arg"] == "workflow.signal: workflow id must be a non-empty string"
