-- Start a promotion, approve it and wait for the outcome, Temporal-era style.
--   assay run start.lua VERSION TARGET
local version, target = arg[1] or "v1.0.0", arg[2] or "staging"
local client = temporal.connect({ url = env.get("ASSAY_ENGINE_URL") or "127.0.0.1:8080" })
local run = client:start_workflow({
  task_queue = env.get("PROMOTION_QUEUE") or "promotions",
  workflow_type = "PromotionWorkflow",
  workflow_id = string.format("promote-%s-to-%s", version, target),
  input = {
    version = version, target = target,
    gitops_url = env.get("GITOPS_URL") or "http://127.0.0.1:9000/api",
    token = env.get("GITOPS_TOKEN"),
    webhook = env.get("CHAT_WEBHOOK") or "http://127.0.0.1:9000/hook",
  },
})
print("started " .. run.workflow_id)
client:signal_workflow({ workflow_id = run.workflow_id, signal_name = "approve", input = { user = env.get("USER") or "ops" } })
local result = client:get_result({ workflow_id = run.workflow_id })
print(json.encode(result))
print(client:describe_workflow(run.workflow_id).status)
