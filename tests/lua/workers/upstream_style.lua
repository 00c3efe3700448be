-- A worker written only against the upstream-documented surface of assay.workflow (connect,
-- define, activity, listen, and the ctx / activity-ctx methods of the upstream docs), to show that
-- such scripts run unchanged under `assay run`.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"), { token = env.get("ASSAY_TOKEN") })

workflow.define("OrderFlow", function(ctx, input)
  local status = "received"
  ctx:register_query("status", function() return { status = status, order = input.order_id } end)
  local price = ctx:execute_activity("price", { items = input.items })
  local stamp = ctx:side_effect("stamp", function() return os.time() end)
  status = "awaiting_payment"
  local payment = ctx:wait_for_signal("paid")
  status = "shipping"
  local labels = ctx:execute_parallel({
    { name = "label", input = { n = 1 } },
    { name = "label", input = { n = 2 } },
  })
  local note = ctx:start_child_workflow("Notify", {
    workflow_id = "notify-" .. input.order_id,
    input = { to = payment.email },
    task_queue = "compat",
  })
  ctx:upsert_search_attributes({ customer = payment.email })
  ctx:sleep(0.1)
  status = "done"
  return { total = price.total, stamp = stamp, labels = labels, note = note, paid_by = payment.email }
end)

workflow.define("Notify", function(ctx, input)
  return ctx:execute_activity("send", input, { task_queue = "compat", max_attempts = 2 })
end)

workflow.activity("price", function(ctx, input)
  local total = 0
  for _, item in ipairs(input.items) do total = total + item.qty * item.unit end
  return { total = total }
end)

workflow.activity("label", function(ctx, input)
  ctx:heartbeat("labeling")
  return "label-" .. input.n
end)

workflow.activity("send", function(ctx, input) return "sent to " .. input.to end)

log.info("upstream-style worker ready")
workflow.listen({ queue = "compat" })
