-- Management side of the compatibility test, also upstream surface only: start, get_state, signal,
-- describe, list, get_events, list_children. Prints one JSON line with what it saw.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))

local id = arg[1]
local started = workflow.start({
  workflow_type = "OrderFlow", workflow_id = id, task_queue = "compat",
  input = { order_id = id, items = { { qty = 2, unit = 5 }, { qty = 1, unit = 7 } } },
})

local function poll(fn, what)
  for _ = 1, 400 do
    local v = fn()
    if v then return v end
    sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

local st = poll(function()
  local s = workflow.get_state(id, "status")
  return s and s.value.status == "awaiting_payment" and s
end, "awaiting_payment")
workflow.signal(id, "paid", { email = "ada@example.com" })
local done = poll(function()
  local d = workflow.describe(id)
  return (d.status == "COMPLETED" or d.status == "FAILED") and d
end, "completion")

local listed = workflow.list({ search_attrs = { customer = "ada@example.com" } })
local events = workflow.get_events(id)
local kids = workflow.list_children(id)
print(json.encode({
  started = started, state = st.value, status = done.status, result = done.result, error = done.error,
  listed = #listed, first_event = events[1].event_type, last_event = events[#events].event_type,
  children = { kids[1].id, kids[1].status }, missing = workflow.describe("no-such-workflow-id") == nil,
}))
