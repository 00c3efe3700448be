"""Python and Lua replays produce the same commands for the same workflow on every history of a real run.

The same workflow is written in both languages; the in-process engine (assay.testing) runs the Python
one and records the task of every workflow step; each step's history is then replayed by the Lua
runner (assay/lua/workflow/replay.lua) and by the Python one, and the command batches must be equal.
"""

from __future__ import annotations

import json

from assay.lua import Runtime
from assay.testing import Engine
from assay.workflow import replay

LUA = """
local replay = require("assay.workflow.replay")
local H = {}
H.Parity = function(ctx, input)
  local state = { step = "start" }
  ctx:register_query("progress", function() return state end)
  local token = ctx:side_effect("token", function() return "tok-1" end)
  local a = ctx:execute_activity("a", { x = input.n, token = token }, { max_attempts = 2, task_queue = "pq",
    start_to_close_secs = 30, non_retryable_errors = { "Fatal" } })
  state.step = "slept"
  ctx:sleep(5)
  local got = ctx:wait_for_signal("go", { timeout = 60 })
  local timed_out = ctx:wait_for_signal("never", { timeout = 2 })
  local par = ctx:execute_parallel({ { "b", 1 }, { "c", 2, { initial_interval_secs = 0.5 } } })
  ctx:upsert_search_attributes({ stage = "children", n = 2 })
  local kid = ctx:start_child_workflow("Kid", { workflow_id = "kid-" .. token, input = { v = a }, task_queue = "pq" })
  local ok, err = pcall(function() return ctx:execute_activity("boom", nil, { max_attempts = 1 }) end)
  state.step = "done"
  return { a = a, got = got, timed_out = timed_out == nil, par = par, kid = kid, failed = not ok }
end
H.Kid = function(ctx, input) return { kid = input.v } end
function RUN(task_json)
  local task = json.parse(task_json)
  local cmds = replay.run(task, H[task.workflow_type], function() end)
  return "[" .. table.concat(cmds, ",") .. "]"
end
"""


def parity(ctx, input):
    state = {"step": "start"}
    ctx.register_query("progress", lambda: state)
    token = ctx.side_effect("token", lambda: "tok-1")
    a = ctx.execute_activity("a", {"x": input["n"], "token": token}, max_attempts=2, task_queue="pq",
                             start_to_close_secs=30, non_retryable_errors=["Fatal"])  # fmt: skip
    state["step"] = "slept"
    ctx.sleep(5)
    got = ctx.wait_for_signal("go", timeout=60)
    timed_out = ctx.wait_for_signal("never", timeout=2)
    par = ctx.execute_parallel([("b", 1), ("c", 2, {"initial_interval_secs": 0.5})])
    ctx.upsert_search_attributes({"stage": "children", "n": 2})
    kid = ctx.start_child_workflow("Kid", {"v": a}, workflow_id="kid-" + token, task_queue="pq")
    try:
        ctx.execute_activity("boom", None, max_attempts=1)
        failed = False
    except Exception:  # noqa: BLE001
        failed = True
    state["step"] = "done"
    return {"a": a, "got": got, "timed_out": timed_out is None, "par": par, "kid": kid, "failed": failed}


class Recording(Engine):
    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict] = []

    def _run_workflow(self, task: dict) -> None:
        self.tasks.append(json.loads(json.dumps(task)))
        super()._run_workflow(task)


def test_every_step_of_a_real_run_gives_the_same_commands_in_lua_and_python():
    rt = Runtime(code=LUA)
    assert rt.run() == 0
    with Recording() as env:
        env.register_workflow("Parity", parity)
        env.register_workflow("Kid", lambda ctx, input: {"kid": input["v"]})
        env.mock_activity("a", lambda actx, i: i["x"] * 10)
        env.mock_activity("b", lambda actx, i: "B")
        env.mock_activity("c", lambda actx, i: "C")

        def boom(actx, i):
            raise RuntimeError("nope")

        env.mock_activity("boom", boom)
        wid = env.start("Parity", {"n": 4}, workflow_id="par-1")
        env.advance(5)
        env.signal(wid, "go", {"ok": True})
        result = env.result(wid)
        assert result == {"a": 40, "got": {"ok": True}, "timed_out": True, "par": ["B", "C"],
                          "kid": {"kid": 40}, "failed": True}  # fmt: skip
        types = [e["event_type"] for e in env.events(wid)]
        assert {"SideEffectRecorded", "TimerFired", "SignalReceived", "ChildWorkflowCompleted",
                "ActivityFailed"} <= set(types)  # fmt: skip
        assert len(env.tasks) >= 8
        for t in env.tasks:
            handler = {"Parity": parity, "Kid": env.workflows["Kid"]}[t["workflow_type"]]
            py = replay.run(handler, t).commands
            lua = json.loads(rt.lua.globals().RUN(json.dumps(t).encode()))
            assert py == lua, (t["workflow_type"], len(t["history"]))
