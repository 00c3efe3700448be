-- Start an ApprovalPipeline and print its id.  Run: assay run start.lua [GIT_REF]
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")
local ref = arg[1] or "abc123"
local run = workflow.start({
  workflow_type = "ApprovalPipeline",
  workflow_id = "deploy-" .. ref,
  task_queue = env.get("ASSAY_QUEUE") or "default",
  input = { ref = ref, env = "staging", approval_timeout_secs = tonumber(env.get("APPROVAL_TIMEOUT_SECS")) },
})
print(run.workflow_id)
