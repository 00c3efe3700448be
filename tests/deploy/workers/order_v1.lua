-- Order workflow, first release: reserve, wait for "go", charge.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))

workflow.define("Order", function(ctx, input)
  local reserved = ctx:execute_activity("reserve", input)
  ctx:wait_for_signal("go")
  local charged = ctx:execute_activity("charge", input)
  return { path = "v1", reserved = reserved, charged = charged }
end)

workflow.activity("reserve", function(actx, input) return "reserved " .. tostring(input.sku) end)
workflow.activity("charge", function(actx, input) return "charged " .. tostring(input.sku) end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
