-- assay.temporal: seed 004's monitoring client, pointed at an assay engine.
--
--   local temporal = require("assay.temporal")
--   local c = temporal.client("http://127.0.0.1:8080", { namespace = "main" })
--   if c.workflows:is_running("order-1") then c.workflows:signal("order-1", "approve", { ok = true }) end
--
-- Statuses use Temporal's names (RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, CONTINUED_AS_NEW).
-- list/search take the visibility-query subset described in docs/temporal.md; filtering happens in the
-- engine. The legacy colon methods (c:workflows(), c:signal_workflow(), ...) delegate to the sub-objects.
local P = require("assay.protocol")
local common = require("assay.temporal.common")
local json = json
local sfmt, concat = string.format, table.concat
local pct, api = common.pct, common.api

local M = {}

---------------------------------------------------------------------------------------------------
-- visibility query subset -> engine filters
---------------------------------------------------------------------------------------------------
local SUPPORTED = "WorkflowType = 'x', WorkflowId = 'x', ExecutionStatus = 'Running', TaskQueue = 'q', " ..
  "<search attribute> = 'v' or a number, joined by AND"

local function tokenize(q, fname, level)
  local toks, i, n = {}, 1, #q
  while i <= n do
    local c = q:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "'" or c == '"' then
      local j = i + 1
      local buf = {}
      while true do
        if j > n then error(sfmt("%s: query: unterminated string starting at %d", fname, i), level + 1) end
        local d = q:sub(j, j)
        if d == c then
          if q:sub(j + 1, j + 1) == c then buf[#buf + 1] = c; j = j + 2 else break end
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      toks[#toks + 1] = { kind = "string", value = concat(buf), text = q:sub(i, j) }
      i = j + 1
    elseif c:match("[%w_]") then
      local word = q:match("^[%w_%.%-]+", i)
      local num = tonumber(word)
      if num and word:match("^%-?%d") then
        toks[#toks + 1] = { kind = "number", value = num, text = word }
      else
        toks[#toks + 1] = { kind = "word", value = word, text = word }
      end
      i = i + #word
    elseif c == "-" and q:sub(i + 1, i + 1):match("%d") then
      local word = q:match("^%-[%d%.eE]+", i)
      toks[#toks + 1] = { kind = "number", value = tonumber(word), text = word }
      i = i + #word
    else
      local op = q:match("^[!<>=]+", i) or q:match("^%S+", i)
      toks[#toks + 1] = { kind = "op", value = op, text = op }
      i = i + #op
    end
  end
  return toks
end

local function unsupported(fname, part, level)
  error(sfmt("%s: unsupported part of the visibility query: '%s' (supported: %s)", fname, part, SUPPORTED), level + 1)
end

-- query -> { type, id, task_queue, status..., search = {k = v} }
function M.parse_query(q, fname, level)
  fname, level = fname or "query", level or 1
  if type(q) ~= "string" then error(fname .. ": query must be a string, got " .. type(q), level + 1) end
  local toks = tokenize(q, fname, level + 1)
  local f = { search = {} }
  local seen = {}
  local i = 1
  if #toks == 0 then return f end
  while true do
    local key, eq, val = toks[i], toks[i + 1], toks[i + 2]
    if not key or key.kind ~= "word" then unsupported(fname, key and key.text or "<end of query>", level + 1) end
    if key.value:upper() == "ORDER" or key.value:upper() == "NOT" then unsupported(fname, key.text, level + 1) end
    if not eq or eq.kind ~= "op" or eq.value ~= "=" then
      unsupported(fname, key.text .. " " .. (eq and eq.text or "<end of query>"), level + 1)
    end
    if not val or (val.kind ~= "string" and val.kind ~= "number") then
      unsupported(fname, key.text .. " = " .. (val and val.text or "<end of query>"), level + 1)
    end
    local k = key.value
    if seen[k] then error(sfmt("%s: query: %s is given twice (only AND of distinct fields)", fname, k), level + 1) end
    seen[k] = true
    if k == "WorkflowType" or k == "WorkflowId" or k == "TaskQueue" or k == "ExecutionStatus" then
      if val.kind ~= "string" then error(sfmt("%s: query: %s needs a quoted string, got %s", fname, k, val.text), level + 1) end
    end
    if k == "WorkflowType" then
      f.type = val.value
    elseif k == "WorkflowId" then
      f.id = val.value
    elseif k == "TaskQueue" then
      f.task_queue = val.value
    elseif k == "ExecutionStatus" then
      local filt = common.status_filter(val.value)
      if not filt then
        error(sfmt("%s: query: unknown ExecutionStatus '%s' (expected one of %s)", fname, val.value,
          common.STATUS_NAMES), level + 1)
      end
      for fk, fv in pairs(filt) do f[fk] = fv end
    elseif k == "RunId" or k == "StartTime" or k == "CloseTime" or k == "ExecutionTime" or k == "HistoryLength" then
      unsupported(fname, key.text, level + 1)
    else
      f.search[k] = val.value
    end
    local nxt = toks[i + 3]
    if not nxt then break end
    if nxt.kind ~= "word" or nxt.value:upper() ~= "AND" then unsupported(fname, nxt.text, level + 1) end
    i = i + 4
  end
  return f
end

---------------------------------------------------------------------------------------------------
-- client
---------------------------------------------------------------------------------------------------
local function ns(c, opts) return (type(opts) == "table" and opts.namespace) or c.namespace end

local function opt_table(fname, opts, level)
  if opts ~= nil and type(opts) ~= "table" then error(fname .. ": opts must be a table, got " .. type(opts), level + 1) end
  return opts or {}
end

local function need_id(fname, what, v, level)
  if type(v) ~= "string" or v == "" then
    error(sfmt("%s: %s must be a non-empty string, got %s", fname, what, type(v)), level + 1)
  end
end

local function page_size(fname, v, level)
  if v == nil then return nil end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    error(fname .. ": page_size must be a positive integer", level + 1)
  end
  return math.min(v, 1000)
end

local function list(c, fname, query, opts, level)
  local f = query and M.parse_query(query, fname, level + 1) or { search = {} }
  local sa
  if next(f.search) ~= nil then sa = json.encode(json.object(f.search)) end
  local qs = common.query({ { "namespace", ns(c, opts) }, { "status", f.status }, { "type", f.type }, { "id", f.id },
    { "task_queue", f.task_queue }, { "terminated", f.terminated }, { "continued", f.continued },
    { "search_attrs", sa }, { "limit", page_size(fname, opts.page_size, level + 1) or 100 } })
  local rows = api(c.conn, fname, level + 1, "GET", "/workflows" .. qs)
  local out = {}
  for i, r in ipairs(type(rows) == "table" and rows or {}) do out[i] = common.execution(r) end
  return { executions = out }
end

local function get(c, fname, id, run_id, opts, level)
  need_id(fname, "workflow_id", id, level + 1)
  if run_id ~= nil and type(run_id) ~= "string" then error(fname .. ": run_id must be a string", level + 1) end
  local rec = api(c.conn, fname, level + 1, "GET", "/workflows/" .. pct(id), nil, true)
  if rec == nil or rec.namespace ~= ns(c, opts) then
    error(sfmt("%s: workflow '%s' not found in namespace '%s'", fname, id, ns(c, opts)), level + 1)
  end
  if run_id ~= nil and run_id ~= "" and rec.run_id ~= run_id then
    error(sfmt("%s: workflow '%s' has run_id '%s', not '%s' (assay keeps one run per workflow id)", fname, id,
      tostring(rec.run_id), run_id), level + 1)
  end
  return common.execution(rec)
end

local function new_client(conn)
  local c = { conn = conn, url = conn.url, namespace = conn.namespace }
  local wf, nss, tq, sch = {}, {}, {}, {}
  c.workflows, c.namespaces, c.task_queues, c.schedules = wf, nss, tq, sch

  function c:health()
    local ok, status = pcall(common.call, conn, "GET", "/health", nil, { timeout = 10 })
    return ok and status == 200
  end

  function c:system_info()
    local v = api(conn, "c:system_info", 2, "GET", "/version")
    local h = api(conn, "c:system_info", 2, "GET", "/health")
    return { server = "assay", server_version = type(v) == "table" and v.version or nil, version = v, health = h,
      url = conn.url, namespace = conn.namespace }
  end

  function nss:list()
    local rows = api(conn, "c.namespaces:list", 2, "GET", "/namespaces")
    return { namespaces = rows }
  end

  function nss:get(name)
    need_id("c.namespaces:get", "name", name, 2)
    local r = api(conn, "c.namespaces:get", 2, "GET", "/namespaces/" .. pct(name), nil, true)
    if r == nil then error(sfmt("c.namespaces:get: namespace '%s' not found", name), 2) end
    return r
  end

  function wf:list(opts)
    opts = opt_table("c.workflows:list", opts, 2)
    return list(c, "c.workflows:list", opts.query, opts, 2)
  end

  function wf:search(query, opts)
    opts = opt_table("c.workflows:search", opts, 2)
    if type(query) ~= "string" then error("c.workflows:search: query must be a string, got " .. type(query), 2) end
    return list(c, "c.workflows:search", query, opts, 2)
  end

  function wf:get(id, run_id, opts)
    return get(c, "c.workflows:get", id, run_id, opt_table("c.workflows:get", opts, 2), 2)
  end

  function wf:history(id, run_id, opts)
    opts = opt_table("c.workflows:history", opts, 2)
    get(c, "c.workflows:history", id, run_id, opts, 2)
    local events = api(conn, "c.workflows:history", 2, "GET", "/workflows/" .. pct(id) .. "/events")
    local max = opts.maximum_page_size
    if max ~= nil then
      if type(max) ~= "number" or max < 1 then error("c.workflows:history: maximum_page_size must be a positive integer", 2) end
      local cut = {}
      for i = 1, math.min(#events, max) do cut[i] = events[i] end
      events = cut
    end
    return { events = events }
  end

  function wf:signal(id, name, input, opts)
    opts = opt_table("c.workflows:signal", opts, 2)
    need_id("c.workflows:signal", "workflow_id", id, 2)
    need_id("c.workflows:signal", "signal_name", name, 2)
    get(c, "c.workflows:signal", id, opts.run_id, opts, 2)
    local body = input == nil and json.object() or { payload = input }
    api(conn, "c.workflows:signal", 2, "POST", "/workflows/" .. pct(id) .. "/signal/" .. pct(name), body)
    return true
  end

  function wf:terminate(id, reason, opts)
    opts = opt_table("c.workflows:terminate", opts, 2)
    get(c, "c.workflows:terminate", id, opts.run_id, opts, 2)
    if reason ~= nil and type(reason) ~= "string" then error("c.workflows:terminate: reason must be a string", 2) end
    api(conn, "c.workflows:terminate", 2, "POST", "/workflows/" .. pct(id) .. "/terminate",
      reason == nil and json.object() or { reason = reason })
    return true
  end

  function wf:cancel(id, opts)
    opts = opt_table("c.workflows:cancel", opts, 2)
    get(c, "c.workflows:cancel", id, opts.run_id, opts, 2)
    api(conn, "c.workflows:cancel", 2, "POST", "/workflows/" .. pct(id) .. "/cancel",
      opts.reason == nil and json.object() or { reason = tostring(opts.reason) })
    return true
  end

  function wf:is_running(id, opts)
    return get(c, "c.workflows:is_running", id, nil, opt_table("c.workflows:is_running", opts, 2), 2).status == P.TemporalStatus.RUNNING
  end

  function wf:wait_complete(id, timeout_secs, opts)
    opts = opt_table("c.workflows:wait_complete", opts, 2)
    need_id("c.workflows:wait_complete", "workflow_id", id, 2)
    if type(timeout_secs) ~= "number" or timeout_secs <= 0 then
      error("c.workflows:wait_complete: timeout_secs must be a positive number", 2)
    end
    get(c, "c.workflows:wait_complete", id, nil, opts, 2)
    return common.execution(common.wait_closed(conn, "c.workflows:wait_complete", id, timeout_secs, 2))
  end

  function tq:get(name, opts)
    opts = opt_table("c.task_queues:get", opts, 2)
    need_id("c.task_queues:get", "name", name, 2)
    local kind = opts.task_queue_type
    if kind ~= nil and kind ~= "workflow" and kind ~= "activity" and kind ~= 1 and kind ~= 2 then
      error("c.task_queues:get: task_queue_type must be 'workflow' or 'activity' (or 1 / 2)", 2)
    end
    local q = common.query({ { "namespace", ns(c, opts) } })
    local stats = api(conn, "c.task_queues:get", 2, "GET", "/queues" .. q)
    local workers = api(conn, "c.task_queues:get", 2, "GET", "/workers" .. q)
    local out = { name = name, namespace = ns(c, opts), pollers = {} }
    for _, s in ipairs(type(stats) == "table" and stats or {}) do
      if s.queue == name or s.name == name or s.task_queue == name then out.stats = s end
    end
    for _, w in ipairs(type(workers) == "table" and workers or {}) do
      if w.task_queue == name then
        out.pollers[#out.pollers + 1] = { identity = w.identity, worker_id = w.id, last_access_time = w.last_heartbeat }
      end
    end
    return out
  end

  function sch:list(opts)
    opts = opt_table("c.schedules:list", opts, 2)
    local rows = api(conn, "c.schedules:list", 2, "GET", "/schedules" .. common.query({ { "namespace", ns(c, opts) } }))
    local max = opts.maximum_page_size
    if type(max) == "number" and max >= 1 and type(rows) == "table" then
      local cut = {}
      for i = 1, math.min(#rows, max) do cut[i] = rows[i] end
      rows = cut
    end
    return { schedules = rows }
  end

  function sch:get(id, opts)
    opts = opt_table("c.schedules:get", opts, 2)
    need_id("c.schedules:get", "schedule_id", id, 2)
    local r = api(conn, "c.schedules:get", 2, "GET", "/schedules/" .. pct(id) .. common.query({ { "namespace",
      ns(c, opts) } }), nil, true)
    if r == nil then error(sfmt("c.schedules:get: schedule '%s' not found", id), 2) end
    return r
  end

  -- legacy colon methods (seed 004 "Backward Compatibility"), each delegating to a sub-object method
  local function delegate(obj, method)
    return function(_, ...)
      local ok, r = pcall(obj[method], obj, ...)
      if not ok then error(r, 2) end
      return r
    end
  end
  c.workflow = delegate(wf, "get")
  c.workflow_history = delegate(wf, "history")
  c.signal_workflow = delegate(wf, "signal")
  c.terminate_workflow = delegate(wf, "terminate")
  c.cancel_workflow = delegate(wf, "cancel")
  c.search_workflows = delegate(wf, "search")
  c.is_workflow_running = delegate(wf, "is_running")
  c.wait_workflow_complete = delegate(wf, "wait_complete")
  c.namespace_info = delegate(nss, "get")
  c.task_queue = delegate(tq, "get")
  c.schedule = delegate(sch, "get")
  c.list_schedules = delegate(sch, "list")
  c.list_workflows = delegate(wf, "list")
  c.list_namespaces = delegate(nss, "list")
  c.get_workflow = c.workflow
  c.get_workflow_history = c.workflow_history
  c.get_namespace = c.namespace_info
  c.get_task_queue = c.task_queue
  c.get_schedule = c.schedule
  -- c:workflows(opts) / c:namespaces() / c:schedules(opts) are legacy calls; the same names are also the
  -- sub-objects, so the sub-objects are callable tables.
  local function callable(obj, method)
    setmetatable(obj, { __call = function(_, _self, ...)
      local ok, r = pcall(obj[method], obj, ...)
      if not ok then error(r, 2) end
      return r
    end })
  end
  callable(wf, "list")
  callable(nss, "list")
  callable(sch, "list")
  return c
end

function M.client(url, opts)
  if opts ~= nil and type(opts) ~= "table" then error("assay.temporal.client: opts must be a table", 2) end
  return new_client(common.open("assay.temporal.client", url, opts or {}, 2))
end

return M
