"""The replay runner on synthetic histories: which commands a handler run produces."""

from __future__ import annotations

import json

from assay.lua import Runtime
from assay.lua.natives import from_lua

HARNESS = """
local replay = require("assay.workflow.replay")
local handlers = {}
HANDLERS = handlers
function RUN(wf_type, history_json, input_json)
  local task = { workflow_id = "wf-1", workflow_type = wf_type, namespace = "main", task_queue = "q1",
    run_id = "run-1", history = json.parse(history_json), input = json.parse(input_json or "null") }
  local logs = {}
  local cmds, summary = replay.run(task, handlers[wf_type], function(level, msg) logs[#logs + 1] = level end)
  return "[" .. table.concat(cmds, ",") .. "]", summary
end
"""


def runner(handlers_lua: str):
    rt = Runtime(code=HARNESS + handlers_lua)
    assert rt.run() == 0

    def run(wf_type: str, history: list, input=None):
        hist = [
            {"seq": i + 1, "event_type": t, "payload": p, "timestamp": 1000.0 + i}
            for i, (t, p) in enumerate(history)
        ]
        cmds, summary = rt.lua.globals().RUN(
            wf_type.encode(), json.dumps(hist).encode(), json.dumps(input).encode()
        )
        return json.loads(cmds), summary.decode()

    return run


STARTED = ("WorkflowStarted", None)


def test_activity_schedule_then_result():
    run = runner("""
      HANDLERS.A = function(ctx, input)
        local r = ctx:execute_activity("greet", input, { max_attempts = 2 })
        return { got = r }
      end
      HANDLERS.B = function(ctx) return ctx:execute_activity("x", 1, { task_queue = "other" }) end
    """)
    cmds, summary = run("A", [STARTED], {"n": 1})
    assert summary == "suspended"
    assert cmds == [
        {"type": "ScheduleActivity", "seq": 1, "name": "greet", "input": {"n": 1}, "max_attempts": 2}
    ]
    assert "task_queue" not in cmds[0]  # the engine routes it to the workflow's own queue
    cmds, summary = run(
        "A",
        [
            STARTED,
            ("ActivityScheduled", {"activity_seq": 1, "name": "greet"}),
            ("ActivityCompleted", {"activity_seq": 1, "name": "greet", "result": "hi"}),
        ],
    )
    assert cmds == [{"type": "CompleteWorkflow", "result": {"got": "hi"}}]
    cmds, _ = run("B", [STARTED])
    assert cmds[0]["task_queue"] == "other"


def test_signal_timer_race_is_decided_by_history_seq():
    run = runner("""
      HANDLERS.W = function(ctx)
        local got, p = ctx:signal_or_timeout("go", 5)
        return { p = p, got = got }
      end
      HANDLERS.Plain = function(ctx) return { ctx:wait_for_signal("go", { timeout = 5 }) } end
    """)
    cmds, _ = run("W", [STARTED])
    assert cmds == [
        {"type": "ScheduleTimer", "seq": 1, "duration_secs": 5.0},
        {"type": "WaitForSignal", "name": "go", "timer_seq": 1},
    ]
    signal_first = [
        STARTED,
        ("SignalReceived", {"signal": "go", "payload": {"v": 1}}),
        ("TimerFired", {"timer_seq": 1}),
    ]
    timer_first = [
        STARTED,
        ("TimerFired", {"timer_seq": 1}),
        ("SignalReceived", {"signal": "go", "payload": {"v": 1}}),
    ]
    assert run("W", signal_first)[0] == [{"type": "CompleteWorkflow", "result": {"p": {"v": 1}, "got": True}}]
    assert run("W", timer_first)[0] == [{"type": "CompleteWorkflow", "result": {"got": False}}]
    # wait_for_signal returns the payload only (one value, as upstream), nil on timeout
    assert run("Plain", signal_first)[0] == [{"type": "CompleteWorkflow", "result": [{"v": 1}]}]
    assert run("Plain", timer_first)[0] == [{"type": "CompleteWorkflow", "result": []}]
    # another signal name does not count
    other = [STARTED, ("SignalReceived", {"signal": "stop", "payload": 1}), ("TimerFired", {"timer_seq": 1})]
    assert run("W", other)[0] == [{"type": "CompleteWorkflow", "result": {"got": False}}]


def test_signals_are_consumed_in_order_per_name():
    run = runner("""
      HANDLERS.S = function(ctx)
        return { ctx:wait_for_signal("a"), ctx:wait_for_signal("b"), ctx:wait_for_signal("a") }
      end
    """)
    hist = [
        STARTED,
        ("SignalReceived", {"signal": "a", "payload": 1}),
        ("SignalReceived", {"signal": "a", "payload": 2}),
        ("SignalReceived", {"signal": "b", "payload": 3}),
    ]
    assert run("S", hist)[0] == [{"type": "CompleteWorkflow", "result": [1, 3, 2]}]
    assert run("S", hist[:3])[0] == [{"type": "WaitForSignal", "name": "b"}]


def test_side_effect_nil_is_cached_by_seq_and_rides_with_the_batch():
    run = runner("""
      CALLS = 0
      HANDLERS.E = function(ctx)
        local v = ctx:side_effect("maybe", function() CALLS = CALLS + 1; return nil end)
        local w = ctx:side_effect("num", function() CALLS = CALLS + 1; return 7 end)
        ctx:sleep(1)
        return { v = v, w = w }
      end
    """)
    cmds, _ = run("E", [STARTED])
    assert cmds == [
        {"type": "RecordSideEffect", "seq": 1, "name": "maybe", "value": None},
        {"type": "RecordSideEffect", "seq": 2, "name": "num", "value": 7},
        {"type": "ScheduleTimer", "seq": 1, "duration_secs": 1.0},
    ]
    hist = [
        STARTED,
        ("SideEffectRecorded", {"side_effect_seq": 1, "name": "maybe", "value": None}),
        ("SideEffectRecorded", {"side_effect_seq": 2, "name": "num", "value": 8}),
        ("TimerFired", {"timer_seq": 1}),
    ]
    cmds, _ = run("E", hist)
    assert cmds == [{"type": "CompleteWorkflow", "result": {"w": 8}}]  # both values from history


def test_snapshot_first_and_upsert_rides_with_the_next_batch():
    run = runner("""
      HANDLERS.Q = function(ctx)
        local stage = "one"
        ctx:register_query("pipeline_state", function() return { steps = { { name = stage, status = "running" } } } end)
        ctx:register_query("nil_query", function() return nil end)
        ctx:upsert_search_attributes({ stage = stage })
        local t = { n = 1 }
        ctx:upsert_search_attributes({ t = t, stage = "two" })
        t.n = 99  -- mutating after the call does not change what was recorded
        stage = "two"
        ctx:execute_activity("a", nil)
      end
    """)
    cmds, _ = run("Q", [STARTED])
    assert [c["type"] for c in cmds] == ["RecordSnapshot", "UpsertSearchAttributes", "ScheduleActivity"]
    assert cmds[0]["state"] == {"pipeline_state": {"steps": [{"name": "two", "status": "running"}]}}
    assert cmds[1]["patch"] == {"stage": "two", "t": {"n": 1}}


def test_cancellation():
    run = runner("""
      HANDLERS.C = function(ctx)
        local a = ctx:execute_activity("a", nil)
        local b = ctx:execute_activity("b", nil)
        return { a, b }
      end
      HANDLERS.Swallow = function(ctx)
        pcall(ctx.execute_activity, ctx, "a", nil)
        return "ignored the cancel"
      end
      HANDLERS.Self = function(ctx) ctx:cancel("done here") end
    """)
    a_done = [
        ("ActivityScheduled", {"activity_seq": 1, "name": "a"}),
        ("ActivityCompleted", {"activity_seq": 1, "name": "a", "result": 1}),
    ]
    # cancel after a finished: a replays, b would wait -> cancel
    assert run("C", [STARTED, *a_done, ("WorkflowCancelRequested", {"reason": "r"})])[0] == [
        {"type": "CancelWorkflow"}
    ]
    # an outcome recorded after the request is not delivered
    hist = [
        STARTED,
        ("ActivityScheduled", {"activity_seq": 1, "name": "a"}),
        ("WorkflowCancelRequested", None),
        ("ActivityCompleted", {"activity_seq": 1, "name": "a", "result": 1}),
    ]
    assert run("C", hist)[0] == [{"type": "CancelWorkflow"}]
    assert run("Swallow", [STARTED, ("WorkflowCancelRequested", None)])[0] == [{"type": "CancelWorkflow"}]
    # ctx:cancel(reason): the reason rides on the command (WorkflowCancelled payload + the workflow's error)
    assert run("Self", [STARTED]) == ([{"type": "CancelWorkflow", "reason": "done here"}], "CancelWorkflow")


def test_parallel_waits_for_all_then_raises_the_first_failure():
    run = runner("""
      HANDLERS.P = function(ctx) return ctx:execute_parallel({ { "a", 1 }, { "b", 2 }, { "c", 3 } }) end
    """)
    cmds, _ = run("P", [STARTED])
    assert [(c["type"], c["seq"], c["name"]) for c in cmds] == [
        ("ScheduleActivity", 1, "a"),
        ("ScheduleActivity", 2, "b"),
        ("ScheduleActivity", 3, "c"),
    ]
    partial = [
        STARTED,
        ("ActivityFailed", {"activity_seq": 2, "name": "b", "error": "nope"}),
        ("ActivityCompleted", {"activity_seq": 1, "name": "a", "result": 1}),
    ]
    cmds, _ = run("P", partial)
    assert [(c["type"], c["seq"]) for c in cmds] == [("ScheduleActivity", 3)]  # still waiting for c
    cmds, summary = run("P", [*partial, ("ActivityCompleted", {"activity_seq": 3, "name": "c", "result": 3})])
    assert summary == "FailWorkflow" and cmds[0]["error"].endswith("activity 'b' failed: nope")


def test_nondeterminism_and_misuse_fail_clearly():
    run = runner("""
      HANDLERS.N = function(ctx) return ctx:execute_activity("renamed", nil) end
      HANDLERS.Y = function(ctx) coroutine.yield("x") end
      HANDLERS.Nested = function(ctx)
        local co = coroutine.wrap(function() return ctx:sleep(1) end)
        return co()
      end
    """)
    hist = [STARTED, ("ActivityScheduled", {"activity_seq": 1, "name": "original"})]
    cmds, _ = run("N", hist)
    assert "nondeterministic workflow: activity #1 was 'original' in the history" in cmds[0]["error"]
    assert "coroutine.yield outside ctx" in run("Y", [STARTED])[0][0]["error"]
    assert "nested coroutine" in run("Nested", [STARTED])[0][0]["error"]
    cmds, _ = run("Unknown", [STARTED])
    assert cmds == [{"type": "FailWorkflow", "error": "no workflow handler registered for type: Unknown"}]


def test_json_text_payloads_from_older_engines_are_decoded():
    run = runner("""
      HANDLERS.A = function(ctx) return ctx:execute_activity("a", nil) end
    """)
    hist = [
        STARTED,
        ("ActivityCompleted", json.dumps({"activity_seq": 1, "name": "a", "result": {"k": [1]}})),
    ]
    assert run("A", hist)[0] == [{"type": "CompleteWorkflow", "result": {"k": [1]}}]


def test_workflow_info_and_child_workflows():
    run = runner("""
      HANDLERS.I = function(ctx)
        local c = ctx:start_child_workflow("Kid", { workflow_id = "kid-1", input = { z = 1 } })
        return { c = c, info = ctx:workflow_info() }
      end
    """)
    cmds, _ = run("I", [STARTED])
    assert cmds == [
        {"type": "StartChildWorkflow", "workflow_type": "Kid", "workflow_id": "kid-1", "input": {"z": 1}}
    ]
    cmds, _ = run("I", [STARTED, ("ChildWorkflowCompleted", {"child_workflow_id": "kid-1", "result": 5})])
    info = cmds[0]["result"]["info"]
    assert cmds[0]["result"]["c"] == 5
    assert info == {
        "workflow_id": "wf-1",
        "workflow_type": "I",
        "namespace": "main",
        "task_queue": "q1",
        "queue": "q1",
        "run_id": "run-1",
        "start_time": 1000.0,
        "history_length": 2,
    }
    cmds, _ = run("I", [STARTED, ("ChildWorkflowFailed", {"child_workflow_id": "kid-1", "error": "bad"})])
    assert cmds[0]["error"].endswith("child workflow 'kid-1' failed: bad")


def test_from_lua_helper_roundtrip():
    rt = Runtime(code="OUT = { a = { 1, 2 }, b = 'x' }")
    rt.run()
    assert from_lua(rt.lua.globals().OUT) == {"a": [1, 2], "b": "x"}
