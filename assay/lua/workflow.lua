-- assay.workflow: the Lua client of the assay workflow engine.
--
--   local workflow = require("assay.workflow")
--   workflow.connect("http://127.0.0.1:8080", { token = env.get("ASSAY_API_KEY") })
--   workflow.define("Hello", function(ctx, input) return ctx:execute_activity("greet", input) end)
--   workflow.activity("greet", function(actx, input) return "hello " .. input.name end)
--   workflow.listen({ queue = "default" })   -- blocks; Ctrl-C / SIGTERM stops gracefully
--
-- Worker role: connect, define, activity, listen. Management role: start, signal, describe, cancel,
-- terminate, list, get_events, get_state, list_children, continue_as_new and the schedules,
-- namespaces, workers, queues and api_keys tables. Every function is documented in docs/lua.md.
local client = require("assay.workflow.client")
local worker = require("assay.workflow.worker")

local M = {}

M.connect = client.connect
for name, fn in pairs(client.api) do M[name] = fn end
M.define = worker.define
M.activity = worker.activity
M.listen = worker.listen

return M
