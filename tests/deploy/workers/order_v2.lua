-- Order workflow, second release done right: the fraud check is behind ctx:get_version, so runs started
-- under v1 keep the v1 path and new runs take the v2 path.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))

workflow.define("Order", function(ctx, input)
  local reserved = ctx:execute_activity("reserve", input)
  local v = ctx:get_version("fraud-check", 1, 2)
  if v == 2 then ctx:execute_activity("fraud_check", input) end
  ctx:wait_for_signal("go")
  local charged = ctx:execute_activity("charge", input)
  return { path = "v" .. v, patched = ctx:patched("fraud-check-log"), reserved = reserved, charged = charged }
end)

workflow.activity("reserve", function(actx, input) return "reserved " .. tostring(input.sku) end)
workflow.activity("fraud_check", function(actx, input) return "clean" end)
workflow.activity("charge", function(actx, input) return "charged " .. tostring(input.sku) end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
