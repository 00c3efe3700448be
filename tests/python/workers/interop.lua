-- The Lua side of the Python <-> Lua interop test (tests/python/test_e2e_worker.py).
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))

workflow.define("LuaKid", function(ctx, input)
  local n = ctx:execute_activity("lua_triple", input.n)
  return { from = "lua", n = n, queue = ctx.task_queue }
end)

workflow.define("LuaParent", function(ctx, input)
  local kid = ctx:start_child_workflow("PyKid", { workflow_id = ctx.workflow_id .. "-kid", input = { n = input.n },
    task_queue = input.py_queue })
  return { parent = "lua", kid = kid }
end)

workflow.activity("lua_triple", function(actx, n) return n * 3 end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
