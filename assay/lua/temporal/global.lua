-- The `temporal` global of `assay run` (seed 004's Temporal-era API) running against an assay engine:
--   temporal.connect{url, namespace?, api_key?} -> client     temporal.start{...} -> {workflow_id, run_id}
--   temporal.start_workflow{...} (after connect)             temporal.worker{...} -> handle
-- Loaded on first use of the global (assay/lua/runtime.py). Documented in docs/temporal.md.
local P = require("assay.protocol")
local native = require("assay._native")
local common = require("assay.temporal.common")
local wclient = require("assay.workflow.client")
local worker = require("assay.workflow.worker")
local json = json
local sfmt = string.format
local pct = common.pct

local T = {}

local function need_table(fname, v, level)
  if type(v) ~= "table" then error(fname .. ": expects a table of options, got " .. type(v), level + 1) end
end

local function need_string(fname, field, v, level)
  if type(v) ~= "string" or v == "" then
    error(sfmt("%s: %s must be a non-empty string, got %s", fname, field, type(v) == "string" and "''" or type(v)),
      level + 1)
  end
end

---------------------------------------------------------------------------------------------------
-- client
---------------------------------------------------------------------------------------------------
local Client = {}
Client.__index = Client

local function self_check(fname, c, level)
  if getmetatable(c) ~= Client then error(fname .. ": call it as client:" .. fname:match("[%w_]+$") .. "{...}", level + 1) end
end

function Client:start_workflow(opts)
  self_check("client:start_workflow", self, 2)
  local f = "client:start_workflow"
  need_table(f, opts, 2)
  need_string(f, "workflow_type", opts.workflow_type, 2)
  need_string(f, "workflow_id", opts.workflow_id, 2)
  if opts.task_queue ~= nil then need_string(f, "task_queue", opts.task_queue, 2) end
  if opts.search_attributes ~= nil and type(opts.search_attributes) ~= "table" then
    error(f .. ": search_attributes must be a table", 2)
  end
  local body = json.object({ workflow_type = opts.workflow_type, workflow_id = opts.workflow_id,
    namespace = opts.namespace or self.conn.namespace, task_queue = opts.task_queue or "default",
    input = opts.input, search_attributes = opts.search_attributes })
  local ok, enc = pcall(json.encode, body)
  if not ok then error(f .. ": input cannot be encoded as JSON: " .. tostring(enc):gsub("^json%.encode: ", ""), 2) end
  local r = common.api(self.conn, f, 2, "POST", "/workflows", enc)
  return { workflow_id = r.workflow_id or opts.workflow_id, run_id = r.run_id }
end

function Client:signal_workflow(opts)
  self_check("client:signal_workflow", self, 2)
  local f = "client:signal_workflow"
  need_table(f, opts, 2)
  need_string(f, "workflow_id", opts.workflow_id, 2)
  need_string(f, "signal_name", opts.signal_name, 2)
  local body = opts.input == nil and json.object() or { payload = opts.input }
  common.api(self.conn, f, 2, "POST", "/workflows/" .. pct(opts.workflow_id) .. "/signal/" .. pct(opts.signal_name), body)
  return true
end

function Client:query_workflow(opts)
  self_check("client:query_workflow", self, 2)
  local f = "client:query_workflow"
  need_table(f, opts, 2)
  need_string(f, "workflow_id", opts.workflow_id, 2)
  need_string(f, "query_type", opts.query_type, 2)
  if opts.input ~= nil then
    error(f .. ": input is not supported: queries on assay read the state the workflow registered " ..
      "(ctx:register_query) and take no input", 2)
  end
  local r = common.api(self.conn, f, 2, "GET", "/workflows/" .. pct(opts.workflow_id) .. "/state/" ..
    pct(opts.query_type), nil, true)
  if r == nil then
    error(sfmt("%s: workflow '%s' has no value for query '%s' (unknown workflow, or it registered no such query " ..
      "with ctx:register_query yet)", f, opts.workflow_id, opts.query_type), 2)
  end
  return r.value
end

local function id_arg(fname, v, level)
  if type(v) == "table" then v = v.workflow_id end
  need_string(fname, "workflow_id", v, level + 1)
  return v
end

function Client:describe_workflow(workflow_id)
  self_check("client:describe_workflow", self, 2)
  local f = "client:describe_workflow"
  local id = id_arg(f, workflow_id, 2)
  local rec = common.api(self.conn, f, 2, "GET", "/workflows/" .. pct(id), nil, true)
  if rec == nil then error(sfmt("%s: workflow '%s' not found", f, id), 2) end
  local events = common.api(self.conn, f, 2, "GET", "/workflows/" .. pct(id) .. "/events")
  return { status = common.temporal_status(rec), workflow_type = rec.workflow_type, run_id = rec.run_id,
    workflow_id = rec.id, task_queue = rec.task_queue, start_time = rec.created_at, close_time = rec.completed_at,
    history_length = type(events) == "table" and #events or 0 }
end

function Client:get_result(opts)
  self_check("client:get_result", self, 2)
  local f = "client:get_result"
  if type(opts) == "string" then opts = { workflow_id = opts } end
  need_table(f, opts, 2)
  local id = id_arg(f, opts.workflow_id, 2)
  if opts.follow_runs ~= nil and type(opts.follow_runs) ~= "boolean" then error(f .. ": follow_runs must be a boolean", 2) end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    error(f .. ": timeout must be a positive number of seconds", 2)
  end
  local follow = opts.follow_runs ~= false
  while true do
    local rec = common.wait_closed(self.conn, f, id, opts.timeout, 2)
    local nxt = common.continued_to(rec)
    if nxt and follow then
      id = nxt
    elseif rec.status == P.WorkflowStatus.COMPLETED then
      return rec.result
    else
      local st = common.temporal_status(rec)
      local words = { FAILED = "failed", TERMINATED = "was terminated", CANCELED = "was canceled",
        TIMED_OUT = "timed out" }
      error(sfmt("%s: workflow '%s' %s: %s", f, id, words[st] or st, tostring(rec.error or st)), 2)
    end
  end
end

function Client:cancel_workflow(workflow_id, reason)
  self_check("client:cancel_workflow", self, 2)
  local id = id_arg("client:cancel_workflow", workflow_id, 2)
  if type(workflow_id) == "table" and reason == nil then reason = workflow_id.reason end
  local body = reason == nil and json.object() or { reason = tostring(reason) }
  common.api(self.conn, "client:cancel_workflow", 2, "POST", "/workflows/" .. pct(id) .. "/cancel", body)
  return true
end

function Client:terminate_workflow(workflow_id, reason)
  self_check("client:terminate_workflow", self, 2)
  local id = id_arg("client:terminate_workflow", workflow_id, 2)
  if type(workflow_id) == "table" and reason == nil then reason = workflow_id.reason end
  local body = reason == nil and json.object() or { reason = tostring(reason) }
  common.api(self.conn, "client:terminate_workflow", 2, "POST", "/workflows/" .. pct(id) .. "/terminate", body)
  return true
end

local default_client

function T.connect(opts)
  need_table("temporal.connect", opts, 2)
  local conn = common.open("temporal.connect", opts.url, opts, 2)
  default_client = setmetatable({ conn = conn, url = conn.url, namespace = conn.namespace }, Client)
  return default_client
end

function T.start(opts)
  need_table("temporal.start", opts, 2)
  local conn = common.open("temporal.start", opts.url, opts, 2)
  local c = setmetatable({ conn = conn, url = conn.url, namespace = conn.namespace }, Client)
  local ok, r = pcall(c.start_workflow, c, opts)
  if not ok then error((tostring(r):gsub("client:start_workflow", "temporal.start")), 2) end
  return r
end

-- Module-level client methods use the connection of the last temporal.connect (seed 004's snippet).
for _, m in ipairs({ "start_workflow", "signal_workflow", "query_workflow", "describe_workflow", "get_result",
  "cancel_workflow", "terminate_workflow" }) do
  T[m] = function(...)
    if not default_client then error("temporal." .. m .. ": call temporal.connect{url = ...} first", 2) end
    local ok, r = pcall(Client[m], default_client, ...)
    if not ok then error(r, 2) end
    return r
  end
end

---------------------------------------------------------------------------------------------------
-- worker
---------------------------------------------------------------------------------------------------
local W = worker
local handles = {} -- running handles, in start order
local turn = 0
local stop_installed = false

local Handle = {}
Handle.__index = Handle

local function log(level, msg) native.log(level, "assay.lua.worker", msg) end

local function env_number(name)
  local ok, v = pcall(env.get, name)
  return ok and tonumber(v) or nil
end

function Handle:is_running()
  return self.running == true and not select(2, native.stopping_now())
end

local function close_handle(h)
  if not h.running then return end
  h.running = false
  pcall(wclient.call, "POST", "/workers/" .. pct(h.worker_id) .. "/deregister", "{}", { timeout = 2 })
  native.heartbeat_stop(h.hb)
  for i, x in ipairs(handles) do
    if x == h then table.remove(handles, i) break end
  end
  log("info", "worker " .. tostring(h.worker_id) .. " stopped (queue '" .. h.cfg.queue .. "')")
  if #handles == 0 and stop_installed then
    native.uninstall_stop()
    stop_installed = false
  end
end

-- Graceful: this process runs tasks only between script statements, so no task is in flight here; stop
-- polling, deregister (the engine ends held polls and frees leases), stop heart-beating.
function Handle:shutdown()
  close_handle(self)
  return true
end

-- Long-poll once (up to secs) for the next running handle and run what it gets. Returns true when a task ran.
local function pump(secs)
  if #handles == 0 then return false end
  turn = turn % #handles + 1
  local h = handles[turn]
  W.worker_id = h.worker_id
  h.cfg.wait_secs = math.max(0, math.min(secs, 20))
  local ok, kind, task = pcall(W.internal.poll, h.cfg)
  if not ok then
    log("warn", "poll failed: " .. tostring(kind))
    native.wait(math.min(secs, 1))
    return true
  end
  if kind == P.TaskKind.workflow_task then
    W.internal.run_workflow_task(task)
  elseif kind == P.TaskKind.activity_task then
    W.internal.run_activity_task(task)
  end
  return true
end
common.pump = function(secs) return #handles > 0 and pump(secs) end

local function check_handlers(f, what, t, level)
  if t == nil then return {} end
  if type(t) ~= "table" then error(sfmt("%s: %s must be a table of name = function, got %s", f, what, type(t)), level + 1) end
  for k, v in pairs(t) do
    if type(k) ~= "string" or k == "" then error(sfmt("%s: %s keys must be non-empty strings", f, what), level + 1) end
    if type(v) ~= "function" then
      error(sfmt("%s: %s.%s must be a function, got %s", f, what, k, type(v)), level + 1)
    end
  end
  return t
end

function T.worker(opts)
  local f = "temporal.worker"
  need_table(f, opts, 2)
  need_string(f, "task_queue", opts.task_queue, 2)
  local acts = check_handlers(f, "activities", opts.activities, 2)
  local wfs = check_handlers(f, "workflows", opts.workflows, 2)
  if next(acts) == nil and next(wfs) == nil then error(f .. ": give at least one workflow or activity", 2) end
  local conn = common.open(f, opts.url, opts, 2)
  -- the worker machinery of assay.workflow uses its one module-level connection
  wclient.connect(conn.url, { token = conn.token })
  for name, fn in pairs(acts) do W.activity(name, function(_actx, input) return fn(input) end) end
  for name, fn in pairs(wfs) do
    W.define(name, function(ctx, input)
      -- seed 004's workflow_info: attempt is the execution's attempt (assay does not retry whole
      -- workflows: 1); the workflow-task dispatch count stays available as task_attempt
      local tctx = setmetatable({ workflow_info = function()
        local info = ctx:workflow_info()
        info.task_attempt, info.attempt = info.attempt, 1
        return info
      end }, { __index = ctx })
      return fn(tctx, input)
    end)
  end
  local cfg = {
    queue = opts.task_queue, namespace = conn.namespace,
    identity = opts.identity or ("assay-temporal-worker-" .. os.hostname()),
    wait_secs = 2, heartbeat_interval = env_number("ASSAY_WORKER_HEARTBEAT_SECS") or 5,
    min_backoff = 0.5, max_backoff = 10, max_concurrent_workflows = 1, max_concurrent_activities = 1, quick_empty = 0,
  }
  if not stop_installed then
    native.install_stop()
    stop_installed = true
  end
  local worker_id, reg = W.internal.register(cfg)
  if not worker_id then error(f .. ": stopped before the worker could register", 2) end
  reg.worker_id = worker_id
  local _, hb = native.heartbeat_start(wclient.state.handle, wclient.BASE .. "/workers/heartbeat", json.encode(reg),
    cfg.heartbeat_interval)
  local h = setmetatable({ worker_id = worker_id, cfg = cfg, hb = hb, running = true, task_queue = cfg.queue,
    namespace = cfg.namespace }, Handle)
  handles[#handles + 1] = h
  local nw, na = 0, 0
  for _ in pairs(wfs) do nw = nw + 1 end
  for _ in pairs(acts) do na = na + 1 end
  log("info", sfmt("worker %s listening on queue '%s' (namespace %s, %d workflow type(s), %d activity type(s))",
    worker_id, cfg.queue, cfg.namespace, nw, na))
  return h
end

-- Called by the runtime after the script's main chunk: serve while a handle runs (until every handle is
-- shut down, or SIGINT/SIGTERM). Returns like the script entry: ok, message, traceback.
function T._serve_after_main()
  if #handles == 0 then return true end
  local tb
  local ok, err = xpcall(function()
    while #handles > 0 and not select(2, native.stopping_now()) do pump(20) end
  end, function(e)
    tb = debug.traceback(nil, 2)
    return e
  end)
  for i = #handles, 1, -1 do close_handle(handles[i]) end
  if ok then return true end
  return false, native.errtext(err), tb
end

return T
