-- Approve or reject a pipeline the way the dashboard button does, then wait for the outcome.
-- Run: assay run decide.lua deploy-abc123 approve|reject [USER]
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")
local id, action, user = arg[1], arg[2] or "approve", arg[3] or env.get("USER") or "cli"
assert(id, "usage: assay run decide.lua <workflow-id> approve|reject [user]")

-- wait until the Approval step offers its buttons
for _ = 1, 600 do
  local s = workflow.get_state(id, "pipeline_state")
  if s and s.value.steps[2].actions then break end
  sleep(0.1)
end
workflow.signal(id, "step_action", { step = "Approval", action = action, user = user })

for _ = 1, 600 do
  local wf = workflow.describe(id)
  if wf.status ~= "RUNNING" and wf.status ~= "PENDING" then
    local steps = {}
    for _, s in ipairs(workflow.get_state(id, "pipeline_state").value.steps) do
      steps[#steps + 1] = s.name .. "=" .. s.status
    end
    print(wf.status .. " " .. table.concat(steps, " "))
    os.exit(0)
  end
  sleep(0.1)
end
os.exit(2)
