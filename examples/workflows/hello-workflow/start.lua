-- Start a HelloWorkflow, wait for it, print the result.
-- Run: assay run start.lua [NAME]
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")

local id = "hello-" .. crypto.random(6):lower()
workflow.start({
  workflow_type = "HelloWorkflow",
  workflow_id = id,
  task_queue = env.get("ASSAY_QUEUE") or "default",
  input = { name = arg[1] or "Ada" },
})

for _ = 1, 600 do
  local wf = workflow.describe(id)
  if wf.status == "COMPLETED" then
    print(wf.result.greeting)
    os.exit(0)
  elseif wf.status == "FAILED" or wf.status == "CANCELLED" then
    io.stderr:write(id .. " ended " .. wf.status .. ": " .. tostring(wf.error) .. "\n")
    os.exit(1)
  end
  sleep(0.1)
end
io.stderr:write("timed out waiting for " .. id .. "\n")
os.exit(2)
