-- nightly-report: a cron-fired workflow that shows schedules, side effects and child workflows.
-- Run: assay run worker.lua   (with `assay serve` running), then create the schedule (README).
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")

-- Parent: fired by the schedule.
workflow.define("NightlyReport", function(ctx, input)
  input = input or {}
  local region = input.region or "eu-west-1"
  -- A fresh report id is non-deterministic, so it is a side effect: recorded once in the history,
  -- replayed from there, even if this worker crashes right after generating it.
  local report_id = ctx:side_effect("report_id", function()
    return "rep-" .. os.date("!%Y%m%d") .. "-" .. crypto.random(6):lower()
  end)
  ctx:upsert_search_attributes({ report_id = report_id, region = region })

  local scan = ctx:execute_activity("scan_anomalies", { region = region, report_id = report_id })

  -- One child per anomaly. Child ids derive from the report id, so a replay finds the same children.
  local handled = {}
  for i, anomaly in ipairs(scan.anomalies) do
    local outcome = ctx:start_child_workflow("HandleAnomaly", {
      workflow_id = report_id .. "-anomaly-" .. i,
      input = { anomaly = anomaly, report_id = report_id },
    })
    handled[#handled + 1] = outcome
  end

  local summary = ctx:execute_activity("publish_report", { report_id = report_id, handled = handled })
  return { report_id = report_id, region = region, anomalies_handled = #handled, published = summary.url }
end)

-- Child: handles one anomaly.
workflow.define("HandleAnomaly", function(ctx, input)
  local result = ctx:execute_activity("remediate", input.anomaly, { max_attempts = 3 })
  return { id = input.anomaly.id, fixed = result.fixed, action = result.action }
end)

-- Activities: deterministic stand-ins for a real scan, fix and publish.
workflow.activity("scan_anomalies", function(actx, input)
  log.info("scanning " .. input.region .. " for report " .. input.report_id)
  return { anomalies = {
    { id = "a-1", kind = "stale_lock" },
    { id = "a-2", kind = "missing_index" },
    { id = "a-3", kind = "orphaned_record" },
  } }
end)

local FIXES = { stale_lock = "released lock", missing_index = "created index", orphaned_record = "archived row" }
workflow.activity("remediate", function(actx, anomaly)
  return { fixed = true, action = FIXES[anomaly.kind] or "escalated" }
end)

workflow.activity("publish_report", function(actx, input)
  return { url = "https://reports.example/" .. input.report_id }
end)

log.info("nightly-report worker ready; create the schedule to fire it (see README.md)")
workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
