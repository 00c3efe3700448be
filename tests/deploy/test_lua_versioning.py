"""ctx:get_version / ctx:patched and the divergence check, on synthetic histories (in-process Lua)."""

from __future__ import annotations

import json

from assay.lua import Runtime

HARNESS = """
local replay = require("assay.workflow.replay")
HANDLERS = {}
function RUN(wf_type, history_json, replay_mode)
  local task = { workflow_id = "wf-1", workflow_type = wf_type, namespace = "main", task_queue = "q",
    run_id = "run-1", history = json.parse(history_json), input = nil }
  local cmds, summary, div = replay.run(task, HANDLERS[wf_type], function() end, replay_mode)
  return "[" .. table.concat(cmds, ",") .. "]", summary, div and json.encode(div) or "null"
end
HANDLERS.V = function(ctx)
  local v = ctx:get_version("fee", 1, 3)
  if v >= 2 then ctx:execute_activity("new_fee", nil) end
  ctx:execute_activity("charge", nil)
  return { v = v, again = ctx:get_version("fee", 1, 3) }
end
HANDLERS.P = function(ctx)
  if ctx:patched("p1") then return "new" end
  return "old"
end
HANDLERS.Bad = function(ctx) return ctx:get_version("", 1, 2) end
HANDLERS.Range = function(ctx) return ctx:get_version("x", 3, 1) end
HANDLERS.Effect = function(ctx)
  local n = ctx:side_effect("n", function() COUNTED = (COUNTED or 0) + 1; return 7 end)
  return n
end
"""


def make():
    rt = Runtime(code=HARNESS)
    assert rt.run() == 0

    def run(wf_type, history, replay_mode=False):
        hist = [
            {"seq": i + 1, "event_type": t, "payload": p, "timestamp": 1000.0 + i}
            for i, (t, p) in enumerate(history)
        ]
        cmds, summary, div = rt.lua.globals().RUN(wf_type.encode(), json.dumps(hist).encode(), replay_mode)
        return json.loads(cmds), summary.decode(), json.loads(div)

    return run, rt


S = ("WorkflowStarted", None)


def sched(seq, name):
    return ("ActivityScheduled", {"activity_seq": seq, "name": name})


def done(seq, name, result=None):
    return ("ActivityCompleted", {"activity_seq": seq, "name": name, "result": result})


def test_new_execution_takes_max_and_records_it_without_a_seq():
    run, _ = make()
    cmds, summary, div = run("V", [S])
    assert div is None and summary == "suspended"
    assert cmds == [
        {"type": "RecordVersion", "change_id": "fee", "version": 3},
        {"type": "ScheduleActivity", "seq": 1, "name": "new_fee", "input": None},
    ]


def test_marker_in_history_is_read_back_and_a_repeat_call_agrees():
    run, _ = make()
    hist = [
        S,
        ("VersionMarkerRecorded", {"change_id": "fee", "version": 2}),
        sched(1, "new_fee"),
        done(1, "new_fee"),
    ]
    hist += [sched(2, "charge"), done(2, "charge")]
    cmds, _, div = run("V", hist)
    assert div is None
    assert cmds == [{"type": "CompleteWorkflow", "result": {"v": 2, "again": 2}}]


def test_old_execution_past_the_change_point_takes_min_and_records_nothing():
    run, _ = make()
    cmds, _, div = run("V", [S, sched(1, "charge"), done(1, "charge", "ok")])
    assert div is None
    assert cmds == [{"type": "CompleteWorkflow", "result": {"v": 1, "again": 1}}]


def test_version_outside_the_supported_range_fails_the_task():
    run, _ = make()
    hist = [S, ("VersionMarkerRecorded", {"change_id": "fee", "version": 9})]
    cmds, summary, div = run("V", hist)
    assert div["event_seq"] == 2
    assert "recorded version 9, outside the supported range 1..3" in div["message"]


def test_patched_is_false_for_old_runs_true_for_new_ones():
    run, _ = make()
    cmds, _, _ = run("P", [S])
    assert cmds == [
        {"type": "RecordVersion", "change_id": "p1", "version": 1},
        {"type": "CompleteWorkflow", "result": "new"},
    ]
    old = [S, ("WorkflowCompleted", "old")]  # an execution old code already finished
    cmds, _, div = run("P", old)
    assert div is None and cmds == [{"type": "CompleteWorkflow", "result": "old"}]


def test_bad_arguments_are_clear_errors():
    run, _ = make()
    cmds, summary, _ = run("Bad", [S])
    assert summary == "FailWorkflow" and "change_id must be a non-empty string" in cmds[0]["error"]
    cmds, _, _ = run("Range", [S])
    assert "min_supported is greater than max_supported" in cmds[0]["error"]


def test_divergences_name_the_event_and_what_the_code_did():
    run, _ = make()
    # the history slept where the code now runs an activity
    hist = [S, ("TimerScheduled", {"timer_seq": 1, "duration_secs": 5}), ("TimerFired", {"timer_seq": 1})]
    _, _, div = run("P", hist)  # P completes at once: it never sleeps
    assert div["event_seq"] == 2 and div["history"].startswith("TimerScheduled")
    assert div["code"] == "completes the workflow"
    # a renamed activity
    _, _, div = run(
        "V", [S, ("VersionMarkerRecorded", {"change_id": "fee", "version": 1}), sched(1, "old_name")]
    )
    assert div["event_seq"] == 3 and "'old_name'" in div["history"] and "'charge'" in div["code"]
    # a history that ended differently
    _, _, div = run(
        "P",
        [S, ("VersionMarkerRecorded", {"change_id": "p1", "version": 1}), ("WorkflowFailed", {"error": "x"})],
    )
    assert div["event_seq"] == 3 and div["code"] == "completes the workflow"


def test_replay_mode_does_not_run_side_effects():
    run, rt = make()
    cmds, summary, div = run("Effect", [S], True)
    assert div is None and summary == "suspended"
    assert rt.lua.globals().COUNTED is None
    cmds, _, div = run(
        "Effect", [S, ("SideEffectRecorded", {"side_effect_seq": 1, "name": "n", "value": 7})], True
    )
    assert div is None and cmds == [{"type": "CompleteWorkflow", "result": 7}]
    run("Effect", [S])  # a live run computes it
    assert rt.lua.globals().COUNTED == 1
