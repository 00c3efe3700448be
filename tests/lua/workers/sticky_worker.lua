-- Worker for the sticky-state end-to-end tests (tests/lua/test_e2e_sticky.py). STARTS counts how many
-- times a handler began at its first line in this process: a sticky worker starts each workflow once
-- (or again after a full-history replay), a replaying one on every task.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
STARTS = 0

workflow.define("Steps", function(ctx, input)
  STARTS = STARTS + 1
  local i, total = 0, 0
  ctx:register_query("step", function() return i end)
  local token = ctx:side_effect("token", function() return { t = crypto.uuid() } end)
  for k = 1, input.n do
    i = k
    total = total + ctx:execute_activity("inc", { k = k })
    if k == input.wait_at then ctx:wait_for_signal("go") end
  end
  return { total = total, starts = STARTS, token = token.t }
end)

workflow.define("Pingpong", function(ctx, input)
  STARTS = STARTS + 1
  local i, got = 0, {}
  ctx:register_query("step", function() return i end)
  for k = 1, input.rounds do
    i = k
    got[k] = ctx:wait_for_signal("go")
    ctx:execute_activity("inc", { k = k })
  end
  return { got = got, starts = STARTS }
end)

workflow.activity("inc", function(actx, input) return input.k end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "sticky" })
