-- Every management function of assay.workflow against a live engine. Each check records
-- name -> value; the test compares the JSON printed at the end.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
local out = {}
local q = "manage"   -- nobody polls this queue: workflows stay PENDING/RUNNING until we act

out.start = workflow.start({ workflow_type = "Idle", workflow_id = "m-1", task_queue = q, input = { a = 1 },
  search_attributes = { env = "test" } })
out.start_default_id = workflow.start({ workflow_type = "Idle", task_queue = q }).workflow_id:match("^wf%-idle%-%d+$") ~= nil
local ok, err = pcall(workflow.start, { workflow_type = "Idle", workflow_id = "m-1", task_queue = q })
out.duplicate = { ok, (tostring(err):match("workflow%.start failed: HTTP (%d+)")) }
local d = workflow.describe("m-1")
out.describe = { d.status, d.input, d.search_attributes.env, d.task_queue }
out.describe_missing = workflow.describe("m-missing") == nil
out.signal = workflow.signal("m-1", "poke", { n = 1 })
out.signal_no_payload = workflow.signal("m-1", "poke")
local evs = workflow.get_events("m-1")
out.events = {}
for _, e in ipairs(evs) do out.events[#out.events + 1] = e.event_type end
out.signal_payload = evs[2].payload.payload
out.state_missing = workflow.get_state("m-1") == nil
out.list = #workflow.list({ search_attrs = { env = "test" } })
out.list_status = #workflow.list({ status = "PENDING", type = "Idle", limit = 1 })
out.children = #workflow.list_children("m-1")
out.cancel = workflow.cancel("m-1")
out.after_cancel = workflow.describe("m-1").status
workflow.start({ workflow_type = "Idle", workflow_id = "m-2", task_queue = q })
out.terminate = workflow.terminate("m-2", "enough")
local t = workflow.describe("m-2")
out.terminated = { t.status, t.error }
workflow.start({ workflow_type = "Idle", workflow_id = "m-3", task_queue = q, input = { v = 1 } })
local can = workflow.continue_as_new("m-3", { v = 2 })
out.continued = { can.status, workflow.describe(can.workflow_id).input, workflow.describe("m-3").status }

-- schedules
local s = workflow.schedules.create({ name = "m-sched", workflow_type = "Idle", cron_expr = "0 0 3 * * *",
  task_queue = q, input = { from = "cron" } })
out.sched_create = { s.name, s.cron_expr, s.paused }
out.sched_list = #workflow.schedules.list()
out.sched_describe = workflow.schedules.describe("m-sched").workflow_type
out.sched_missing = workflow.schedules.describe("nope") == nil
out.sched_patch = workflow.schedules.patch("m-sched", { cron_expr = "0 30 3 * * *" }).cron_expr
out.sched_pause = workflow.schedules.pause("m-sched").paused
out.sched_resume = workflow.schedules.resume("m-sched").paused
local fired = workflow.schedules.trigger("m-sched")
out.sched_trigger = { type(fired.workflow_id), workflow.describe(fired.workflow_id).input }
out.sched_delete = workflow.schedules.delete("m-sched")
out.sched_after_delete = workflow.schedules.describe("m-sched") == nil
local ok2, err2 = pcall(workflow.schedules.create, { name = "x" })
out.sched_validation = { ok2, tostring(err2):match("opts%.workflow_type is required") ~= nil }

-- namespaces
out.ns_create = workflow.namespaces.create("m-ns")
local names = {}
for _, n in ipairs(workflow.namespaces.list()) do names[#names + 1] = n.name end
table.sort(names)
out.ns_list = names
out.ns_stats = workflow.namespaces.stats("m-ns").total_workflows
out.ns_describe = workflow.namespaces.describe("m-ns").namespace
out.ns_delete = workflow.namespaces.delete("m-ns")

-- workers, queues, api keys
out.workers = type(workflow.workers.list())
local stats = workflow.queues.stats()
out.queues = type(stats)
local key = workflow.api_keys.generate("m-label")
out.key = { key.plaintext:match("^assay_%x+$") ~= nil, key.label }
local again = workflow.api_keys.generate("m-label", { idempotent = true })
out.key_idempotent = { again.plaintext == nil, again.prefix == key.prefix }
out.key_list = #workflow.api_keys.list()
out.key_delete = workflow.api_keys.delete(key.prefix)
out.key_delete_again = workflow.api_keys.delete(key.prefix)

-- errors name the function and carry the engine's message
local ok3, err3 = pcall(workflow.signal, "", "x")
out.bad_arg = tostring(err3)
print(json.encode(out))
