-- assay.workflow.client: the engine connection and the management functions of assay.workflow.
-- Internal module; scripts use require("assay.workflow").
local native = require("assay._native")
local P = require("assay.protocol")
local json = json
local sfmt, concat = string.format, table.concat
local now, sleep = time, sleep

-- A JSON object copy of table t (never touches the caller's table or its metatable).
local function obj(t)
  local o = json.object()
  if type(t) == "table" then
    for k, v in pairs(t) do o[k] = v end
  end
  return o
end

local C = {}

-- Connection state shared by the client, the replay runner and the worker loop.
local state = { handle = nil, url = nil, token = nil, legacy = false }
C.state = state
C.BASE = "/api/v1"

local function pct(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return sfmt("%%%02X", c:byte()) end))
end
C.pct = pct

-- Decode a value that an older engine may deliver as JSON text inside a string.
local function maybe_json(v, want)
  if type(v) ~= "string" then return v end
  local ok, parsed = pcall(json.parse, v)
  if ok and (want == nil or type(parsed) == want) then return parsed end
  return v
end
C.maybe_json = maybe_json

-- Low level: returns status, decoded JSON value (or nil), raw body. Raises on transport errors.
-- body: nil (no body), a string (sent as is) or a Lua value (JSON-encoded).
-- The same on an explicit engine connection `handle` (the Temporal-era modules hold their own).
function C.call_on(handle, method, path, body, opts)
  local text
  if body ~= nil then
    if type(body) == "string" then text = body else text = json.encode(body) end
  end
  local ok, status, raw = native.engine_call(handle, method, C.BASE .. path, text,
    opts and opts.timeout, opts and opts.interruptible)
  if not ok then error(status, 0) end
  local value
  if raw and #raw > 0 then
    local okp, v = pcall(json.parse, raw)
    if okp then value = v end
  end
  return status, value, raw
end

function C.call(method, path, body, opts)
  if not state.handle then error("workflow: not connected (call workflow.connect(url) first)", 0) end
  return C.call_on(state.handle, method, path, body, opts)
end

-- The engine's error message of a failed answer, or its body (cut at `max` characters, default 500).
function C.err_body(value, raw, max)
  if type(value) == "table" and type(value.error) == "string" then return value.error end
  raw = raw or ""
  max = max or 500
  if #raw > max then raw = raw:sub(1, max) .. "..." end
  return raw == "" and "<empty>" or raw
end
local err_body = C.err_body

-- Call the engine for management function `fname`; `accept` maps OK statuses to true. A 404 returns
-- nil when accept[404] == "nil". Errors are raised at the caller of the public function (level 3).
local function api(fname, method, path, body, accept)
  local ok, status, value, raw = pcall(C.call, method, path, body)
  if not ok then error("workflow." .. fname .. " failed: " .. tostring(status), 3) end
  local a = accept[status]
  if a == "nil" then return nil end
  if a then return value == nil and true or value end
  error(sfmt("workflow.%s failed: HTTP %d: %s", fname, status, err_body(value, raw)), 3)
end

local OK200 = { [200] = true, [201] = true, [204] = true }
local OK_OR_NIL = { [200] = true, [404] = "nil" }

local function need_string(fname, what, v)
  if type(v) ~= "string" or v == "" then
    error(sfmt("workflow.%s: %s must be a non-empty string", fname, what), 3)
  end
end

local function normalize(rec)
  if type(rec) ~= "table" then return rec end
  rec.search_attributes = maybe_json(rec.search_attributes, "table")
  if state.legacy then
    rec.input = maybe_json(rec.input)
    rec.result = maybe_json(rec.result)
  end
  return rec
end

local function normalize_list(list)
  if type(list) == "table" then
    for _, r in ipairs(list) do normalize(r) end
  end
  return list
end

local function query(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then parts[#parts + 1] = pct(kv[1]) .. "=" .. pct(kv[2]) end
  end
  return #parts > 0 and ("?" .. concat(parts, "&")) or ""
end

local function ns_query(opts)
  return query({ { "namespace", (type(opts) == "table" and opts.namespace) or P.DEFAULT_NAMESPACE } })
end

---------------------------------------------------------------------------------------------------
-- connect
---------------------------------------------------------------------------------------------------
function C.connect(url, opts)
  -- ASSAY_ENGINE_URL / ASSAY_API_KEY and their defaults are declared in assay/config.py
  local okd, defaults = native.settings("engine_url", "api_key")
  if not okd then error("workflow.connect: " .. tostring(defaults), 2) end
  if url == nil then url = defaults.engine_url end
  if type(url) ~= "string" or url == "" then error("workflow.connect: url must be a non-empty string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("workflow.connect: opts must be a table", 2) end
  if select(2, native.replay_mode()) then return true end -- assay replay: no engine traffic
  opts = opts or {}
  url = url:gsub("/+$", "")
  local token = opts.token
  if token == nil then token = defaults.api_key end
  local headers = {}
  if token ~= nil and token ~= "" then headers["Authorization"] = "Bearer " .. tostring(token) end
  local ok, handle = native.engine_new(url, headers, opts.timeout or 30)
  if not ok then error("workflow.connect: " .. tostring(handle), 2) end
  state.handle, state.url, state.token, state.legacy = handle, url, token, false
  -- opts.wait_secs: keep trying that long (an engine that is still starting), with backoff
  local deadline = now() + (tonumber(opts.wait_secs) or 0)
  local delay = 0.25
  while true do
    local okc, status = pcall(C.call, "GET", "/health")
    if okc and status == 200 then return true end
    if now() + delay > deadline then
      state.handle = nil
      error("workflow.connect: cannot reach engine at " .. url .. (okc and (" (HTTP " .. status .. ")")
        or (": " .. tostring(status))), 2)
    end
    sleep(delay)
    delay = math.min(delay * 2, 5)
  end
end

---------------------------------------------------------------------------------------------------
-- workflows
---------------------------------------------------------------------------------------------------
local A = {}
C.api = A

function A.start(opts)
  if type(opts) ~= "table" then error("workflow.start: opts must be a table", 2) end
  need_string("start", "opts.workflow_type", opts.workflow_type)
  local id = opts.workflow_id
  if id == nil then
    id = sfmt("wf-%s-%d", opts.workflow_type:lower(), math.floor(now() * 1000))
  end
  need_string("start", "opts.workflow_id", id)
  local body = {
    workflow_type = opts.workflow_type, workflow_id = id, namespace = opts.namespace,
    input = opts.input, task_queue = opts.task_queue or P.DEFAULT_TASK_QUEUE, search_attributes = opts.search_attributes,
  }
  return api("start", "POST", "/workflows", body, OK200)
end

function A.signal(id, name, payload)
  need_string("signal", "workflow id", id)
  need_string("signal", "signal name", name)
  local body = payload == nil and json.object() or { payload = payload }
  api("signal", "POST", "/workflows/" .. pct(id) .. "/signal/" .. pct(name), body, OK200)
  return true
end

function A.describe(id)
  need_string("describe", "workflow id", id)
  return normalize(api("describe", "GET", "/workflows/" .. pct(id), nil, OK_OR_NIL))
end

function A.cancel(id, reason)
  need_string("cancel", "workflow id", id)
  local body = reason == nil and json.object() or { reason = tostring(reason) }
  api("cancel", "POST", "/workflows/" .. pct(id) .. "/cancel", body, OK200)
  return true
end

function A.terminate(id, reason)
  need_string("terminate", "workflow id", id)
  local body = reason == nil and json.object() or { reason = tostring(reason) }
  api("terminate", "POST", "/workflows/" .. pct(id) .. "/terminate", body, OK200)
  return true
end

function A.list(opts)
  if opts ~= nil and type(opts) ~= "table" then error("workflow.list: opts must be a table", 2) end
  opts = opts or {}
  local sa
  if opts.search_attrs ~= nil then sa = json.encode(obj(opts.search_attrs)) end
  local q = query({ { "namespace", opts.namespace or P.DEFAULT_NAMESPACE }, { "status", opts.status }, { "type", opts.type },
    { "search_attrs", sa }, { "limit", opts.limit }, { "offset", opts.offset } })
  return normalize_list(api("list", "GET", "/workflows" .. q, nil, OK200))
end

local function decode_events(list)
  if type(list) ~= "table" then return list end
  for _, ev in ipairs(list) do
    local t = ev.event_type
    if t == P.EventType.WorkflowStarted or t == P.EventType.WorkflowCompleted then
      if state.legacy then ev.payload = maybe_json(ev.payload) end
    else
      ev.payload = maybe_json(ev.payload, "table")
    end
  end
  return list
end
C.decode_events = decode_events

function A.get_events(id)
  need_string("get_events", "workflow id", id)
  return decode_events(api("get_events", "GET", "/workflows/" .. pct(id) .. "/events", nil, OK200))
end

function A.get_state(id, name)
  need_string("get_state", "workflow id", id)
  local path = "/workflows/" .. pct(id) .. "/state"
  if name ~= nil then path = path .. "/" .. pct(name) end
  local r = api("get_state", "GET", path, nil, OK_OR_NIL)
  if type(r) == "table" then
    if r.state ~= nil then r.state = maybe_json(r.state, "table") end
  end
  return r
end

function A.list_children(id)
  need_string("list_children", "workflow id", id)
  return normalize_list(api("list_children", "GET", "/workflows/" .. pct(id) .. "/children", nil, OK200))
end

function A.continue_as_new(id, input, opts)
  need_string("continue_as_new", "workflow id", id)
  local body = json.object({ input = input, workflow_id = type(opts) == "table" and opts.workflow_id or nil })
  return api("continue_as_new", "POST", "/workflows/" .. pct(id) .. "/continue-as-new", body, OK200)
end

---------------------------------------------------------------------------------------------------
-- schedules, namespaces, workers, queues, api keys
---------------------------------------------------------------------------------------------------
local S = {}
A.schedules = S

function S.create(opts)
  if type(opts) ~= "table" then error("workflow.schedules.create: opts must be a table", 2) end
  for _, k in ipairs({ "name", "workflow_type", "cron_expr" }) do
    if type(opts[k]) ~= "string" or opts[k] == "" then
      error("workflow.schedules.create: opts." .. k .. " is required", 2)
    end
  end
  local body = {}
  for k, v in pairs(opts) do body[k] = v end
  body.namespace = body.namespace or P.DEFAULT_NAMESPACE
  body.task_queue = body.task_queue or P.DEFAULT_TASK_QUEUE
  return normalize(api("schedules.create", "POST", "/schedules", body, OK200))
end

function S.list(opts)
  return normalize_list(api("schedules.list", "GET", "/schedules" .. ns_query(opts), nil, OK200))
end

function S.describe(name, opts)
  need_string("schedules.describe", "schedule name", name)
  return normalize(api("schedules.describe", "GET", "/schedules/" .. pct(name) .. ns_query(opts), nil, OK_OR_NIL))
end

function S.patch(name, patch, opts)
  need_string("schedules.patch", "schedule name", name)
  if type(patch) ~= "table" then error("workflow.schedules.patch: patch must be a table", 2) end
  return normalize(api("schedules.patch", "PATCH", "/schedules/" .. pct(name) .. ns_query(opts),
    obj(patch), OK200))
end

for _, verb in ipairs({ "pause", "resume" }) do
  S[verb] = function(name, opts)
    need_string("schedules." .. verb, "schedule name", name)
    return normalize(api("schedules." .. verb, "POST", "/schedules/" .. pct(name) .. "/" .. verb .. ns_query(opts),
      json.object(), OK200))
  end
end

function S.delete(name, opts)
  need_string("schedules.delete", "schedule name", name)
  api("schedules.delete", "DELETE", "/schedules/" .. pct(name) .. ns_query(opts), nil, OK200)
  return true
end

function S.trigger(name, opts)
  need_string("schedules.trigger", "schedule name", name)
  return api("schedules.trigger", "POST", "/schedules/" .. pct(name) .. "/trigger" .. ns_query(opts),
    json.object(), OK200)
end

local NS = {}
A.namespaces = NS

function NS.create(name)
  need_string("namespaces.create", "namespace name", name)
  api("namespaces.create", "POST", "/namespaces", { name = name }, OK200)
  return true
end

function NS.list() return api("namespaces.list", "GET", "/namespaces", nil, OK200) end

function NS.describe(name)
  need_string("namespaces.describe", "namespace name", name)
  return api("namespaces.describe", "GET", "/namespaces/" .. pct(name), nil, OK_OR_NIL)
end
NS.stats = NS.describe

function NS.delete(name)
  need_string("namespaces.delete", "namespace name", name)
  api("namespaces.delete", "DELETE", "/namespaces/" .. pct(name), nil, OK200)
  return true
end

A.workers = {
  list = function(opts)
    local list = api("workers.list", "GET", "/workers" .. ns_query(opts), nil, OK200)
    if type(list) == "table" then
      for _, w in ipairs(list) do
        w.workflows = maybe_json(w.workflows, "table")
        w.activities = maybe_json(w.activities, "table")
      end
    end
    return list
  end,
}

A.queues = {
  stats = function(opts) return api("queues.stats", "GET", "/queues" .. ns_query(opts), nil, OK200) end,
}

A.api_keys = {
  generate = function(label, opts)
    local body = json.object({ label = label, idempotent = type(opts) == "table" and opts.idempotent or nil })
    return api("api_keys.generate", "POST", "/api-keys", body, OK200)
  end,
  list = function() return api("api_keys.list", "GET", "/api-keys", nil, OK200) end,
  delete = function(prefix)
    need_string("api_keys.delete", "key prefix", prefix)
    local r = api("api_keys.delete", "DELETE", "/api-keys/" .. pct(prefix), nil,
      { [200] = true, [204] = true, [404] = "nil" })
    return r ~= nil
  end,
}

return C
