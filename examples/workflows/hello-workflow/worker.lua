-- hello-workflow: the smallest useful worker. One workflow, one activity.
-- Run: assay run worker.lua   (with `assay serve` running; ASSAY_ENGINE_URL overrides the address)
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")

-- The workflow orchestrates; it must be deterministic, so the actual work happens in activities.
workflow.define("HelloWorkflow", function(ctx, input)
  local name = (input and input.name) or "world"
  local greeting = ctx:execute_activity("compose_greeting", { name = name })
  return { greeting = greeting, workflow_id = ctx.workflow_id }
end)

-- Activities do the real work (HTTP calls, files, databases...). They may be retried.
workflow.activity("compose_greeting", function(actx, input)
  log.info("composing a greeting for " .. input.name .. " (attempt " .. actx.attempt .. ")")
  return "Hello, " .. input.name .. "!"
end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
