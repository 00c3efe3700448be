"""assay.testing: the in-process engine with a fake clock and time skipping."""

from __future__ import annotations

import pytest

from assay import workflow
from assay.testing import Engine, WorkflowFailed, WorkflowStuck
from assay.workflow import ActivityError, WorkflowTaskError

DAY = 86400.0


@workflow.define("KitGreet")
def greet(ctx, input):
    uid = ctx.side_effect("id", lambda: "fixed-id")
    text = ctx.execute_activity("kit_render", {"name": input["name"]}, max_attempts=3)
    ok = ctx.wait_for_signal("approve", timeout=DAY)
    return {"id": uid, "text": text, "approved": ok is not None, "by": (ok or {}).get("user")}


@workflow.activity("kit_render")
def render(actx, input):
    actx.heartbeat({"progress": 1})
    return "Hello, " + input["name"]


@workflow.define("KitMonth")
def month(ctx, input):
    before = ctx.now()
    ctx.sleep(30 * DAY)
    return {"slept_days": (ctx.now() - before).total_seconds() / DAY}


@workflow.define("KitRetry")
def retry(ctx, input):
    try:
        return ctx.execute_activity("kit_flaky", None, max_attempts=input, initial_interval_secs=3600,
                                    backoff_coefficient=2)  # fmt: skip
    except ActivityError as e:
        return {"gave_up": str(e)}


def test_signal_before_the_timeout_and_mock_activity():
    with Engine() as env:
        env.mock_activity("kit_render", lambda actx, input: "stub for " + input["name"])
        wid = env.start("KitGreet", {"name": "ada"})
        assert env.describe(wid)["status"] == "RUNNING"
        env.advance(3600)  # an hour passes: the one-day timeout has not fired
        env.signal(wid, "approve", {"user": "jane"})
        assert env.result(wid) == {"id": "fixed-id", "text": "stub for ada", "approved": True, "by": "jane"}
        types = [e["event_type"] for e in env.events(wid)]
        assert types[:4] == [
            "WorkflowStarted",
            "SideEffectRecorded",
            "ActivityScheduled",
            "ActivityCompleted",
        ]
        assert types[-1] == "WorkflowCompleted" and "TimerFired" not in types


def test_result_skips_time_when_nothing_else_can_happen():
    with Engine() as env:
        t0 = env.now()
        wid = env.start("KitGreet", {"name": "ada"})  # the real activity runs (it heartbeats)
        assert env.result(wid) == {"id": "fixed-id", "text": "Hello, ada", "approved": False, "by": None}
        assert env.now() == pytest.approx(t0 + DAY)  # exactly the timeout, not more
        m = env.start("KitMonth")
        assert env.result(m) == {"slept_days": 30.0}
        assert env.now() == pytest.approx(t0 + 31 * DAY)


def test_advance_fires_timers_in_order_and_only_when_due():
    with Engine() as env:
        wid = env.start("KitMonth")
        env.advance(29 * DAY)
        assert env.describe(wid)["status"] == "RUNNING"
        env.advance(DAY)
        assert env.describe(wid)["status"] == "COMPLETED"
        with pytest.raises(ValueError):
            env.advance(-1)


def test_retries_wait_out_their_backoff_in_fake_time():
    attempts = []

    def flaky(actx, input):
        attempts.append((actx.attempt, env.now()))
        if actx.attempt < 3:
            raise RuntimeError("flaky")
        return "third time"

    with Engine() as env:
        env.mock_activity("kit_flaky", flaky)
        t0 = env.now()
        assert env.result(env.start("KitRetry", 5)) == "third time"
        assert [a for a, _ in attempts] == [1, 2, 3]
        assert [t - t0 for _, t in attempts] == [0, 3600, 3600 + 7200]
        attempts.clear()
        out = env.result(env.start("KitRetry", 2))
        assert out == {"gave_up": "activity 'kit_flaky' failed: RuntimeError: flaky"}


def test_failures_stuck_workflows_and_cancellation():
    with Engine() as env:
        env.register_workflow("Boom", lambda ctx, input: 1 / 0)
        with pytest.raises(WorkflowFailed, match="ZeroDivisionError"):
            env.result(env.start("Boom"))
        env.register_workflow("Forever", lambda ctx, input: ctx.wait_for_signal("never"))
        stuck = env.start("Forever")
        with pytest.raises(WorkflowStuck, match="nothing is due"):
            env.result(stuck)
        env.cancel(stuck, "enough")
        with pytest.raises(WorkflowFailed, match="CANCELLED") as e:
            env.result(stuck)
        assert e.value.status == "CANCELLED"


def test_children_on_other_queues_continue_as_new_and_queries():
    def parent(ctx, input):
        ctx.register_query("seen", lambda: {"n": input["n"]})
        if input["n"] < 3:
            ctx.continue_as_new({"n": input["n"] + 1})
        return ctx.start_child_workflow("KitKid", {"n": input["n"]}, workflow_id="kid-1", task_queue="other")

    with Engine() as env:
        env.register_workflow("KitParent", parent)
        env.register_workflow("KitKid", lambda ctx, input: {"kid": input["n"] * 2, "queue": ctx.info.queue})
        wid = env.start("KitParent", {"n": 1}, workflow_id="p-1")
        assert env.result(wid) == {"kid": 6, "queue": "other"}
        runs = [w for w in env.engine.list_workflows() if w["workflow_type"] == "KitParent"]
        assert len(runs) == 3 and env.state(wid, "seen") == {"n": 1}
        assert sorted(env.state(r["id"], "seen")["n"] for r in runs) == [1, 2, 3]


def test_nondeterminism_raises_in_the_kit():
    with Engine() as env:
        env.register_workflow("Shifty", lambda ctx, input: ctx.execute_activity("one"))
        wid = env.start("Shifty")
        env.register_workflow("Shifty", lambda ctx, input: ctx.execute_activity("two"))
        with pytest.raises(
            WorkflowTaskError, match="activity #1 was 'one' in the history, the code now runs 'two'"
        ):
            env.mock_activity("one", lambda actx, i: 1)
            env.result(wid)


def test_engine_module_filter_registers_only_that_module():
    import sys

    with Engine(sys.modules[__name__]) as env:
        assert {"KitGreet", "KitMonth", "KitRetry"} <= set(env.workflows)
        assert all(getattr(fn, "__module__", None) == __name__ for fn in env.workflows.values())
