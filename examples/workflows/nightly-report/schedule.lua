-- Create (or update) the nightly schedule, fire one run now, wait for it and print a summary.
-- Run: assay run schedule.lua [CRON]     (default "0 0 2 * * *": 02:00 every night, UTC)
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")

local name = "nightly-report"
local spec = {
  name = name,
  workflow_type = "NightlyReport",
  cron_expr = arg[1] or "0 0 2 * * *",
  timezone = env.get("REPORT_TIMEZONE") or "UTC",
  task_queue = env.get("ASSAY_QUEUE") or "default",
  input = { region = "eu-west-1" },
}
if workflow.schedules.describe(name) then
  workflow.schedules.patch(name, { cron_expr = spec.cron_expr, timezone = spec.timezone, input = spec.input,
    task_queue = spec.task_queue })
else
  workflow.schedules.create(spec)
end
local sched = workflow.schedules.describe(name)
print("schedule " .. name .. ": " .. sched.cron_expr .. " (" .. sched.timezone .. ")")

-- Fire one run now instead of waiting for the night.
local run = workflow.schedules.trigger(name)
print("triggered " .. run.workflow_id)
for _ = 1, 600 do
  local wf = workflow.describe(run.workflow_id)
  if wf.status == "COMPLETED" then
    local kids = workflow.list_children(run.workflow_id)
    print(string.format("%s: %d anomalies handled by %d children, report %s", run.workflow_id,
      wf.result.anomalies_handled, #kids, wf.result.report_id))
    os.exit(0)
  elseif wf.status ~= "PENDING" and wf.status ~= "RUNNING" then
    io.stderr:write(run.workflow_id .. " ended " .. wf.status .. ": " .. tostring(wf.error) .. "\n")
    os.exit(1)
  end
  sleep(0.1)
end
os.exit(2)
