-- assay.temporal.common: what the Temporal-era API (seed 004) shares: engine connections, Temporal status
-- names, waiting on a workflow. Internal module; scripts use the `temporal` global or require("assay.temporal").
local P = require("assay.protocol")
local WS, TS = P.WorkflowStatus, P.TemporalStatus
local native = require("assay._native")
local wclient = require("assay.workflow.client")
local json = json
local sfmt, concat = string.format, table.concat
local env = env

local M = {}

local function pct(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return sfmt("%%%02X", c:byte()) end))
end
M.pct = pct

function M.query(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then parts[#parts + 1] = pct(kv[1]) .. "=" .. pct(kv[2]) end
  end
  return #parts > 0 and ("?" .. concat(parts, "&")) or ""
end

-- `host:port` (Temporal style, means http://host:port) or an http(s):// URL -> base URL. `level` is the
-- error level of the public function's caller.
function M.normalize_url(fname, url, level)
  if url == nil then
    local ok, v = pcall(env.get, "ASSAY_ENGINE_URL")
    url = ok and v or nil
    if url == nil then error(fname .. ": url is required (host:port or http(s)://host:port)", level + 1) end
  end
  if type(url) ~= "string" then error(fname .. ": url must be a string, got " .. type(url), level + 1) end
  if url:match("^https?://[%w%.%-_%[%]:]+") and not url:match("%s") then return (url:gsub("/+$", "")) end
  if url:match("^[%w%.%-_]+:%d+$") or url:match("^%[[%x:]+%]:%d+$") then return "http://" .. url end
  error(sfmt("%s: url must be host:port (Temporal style) or an http(s):// URL of an assay engine, got '%s'",
    fname, url), level + 1)
end

function M.default_namespace()
  local ok, v = pcall(env.get, "ASSAY_NAMESPACE")
  if ok and type(v) == "string" and v ~= "" then return v end
  return P.DEFAULT_NAMESPACE
end

-- Low level: returns status, decoded JSON (or nil), raw body. Raises (level 0) on transport errors.
function M.call(conn, method, path, body, opts)
  return wclient.call_on(conn.handle, method, path, body, opts)
end

local function err_body(value, raw) return wclient.err_body(value, raw, 300) end

-- Call the engine for public function `fname`; 2xx -> value (or true); 404 -> nil when nil404; any other
-- answer raises "<fname>: HTTP <n>: <engine message>" at `level`.
function M.api(conn, fname, level, method, path, body, nil404)
  local ok, status, value, raw = pcall(M.call, conn, method, path, body)
  if not ok then error(fname .. ": engine unreachable: " .. tostring(status), level + 1) end
  if status >= 200 and status < 300 then
    if value == nil then return true end
    return value
  end
  if status == 404 and nil404 then return nil end
  error(sfmt("%s: HTTP %d: %s", fname, status, err_body(value, raw)), level + 1)
end

-- Open a connection to an assay engine and check that it answers. opts: {namespace?, api_key?}.
function M.open(fname, url, opts, level)
  local base = M.normalize_url(fname, url, level + 1)
  opts = opts or {}
  if opts.namespace ~= nil and (type(opts.namespace) ~= "string" or opts.namespace == "") then
    error(fname .. ": namespace must be a non-empty string", level + 1)
  end
  local token = opts.api_key
  if token ~= nil and type(token) ~= "string" then error(fname .. ": api_key must be a string", level + 1) end
  if token == nil then
    local okE, v = pcall(env.get, "ASSAY_API_KEY")
    token = okE and v or nil
  end
  local headers = {}
  if token ~= nil and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  local ok, handle = native.engine_new(base, headers, 30)
  if not ok then error(fname .. ": " .. tostring(handle), level + 1) end
  local conn = { handle = handle, url = base, token = token, namespace = opts.namespace or M.default_namespace() }
  local okc, status = pcall(M.call, conn, "GET", "/health", nil, { timeout = 10 })
  if not okc or status ~= 200 then
    error(sfmt("%s: cannot reach the assay engine at %s (%s)", fname, base,
      okc and ("HTTP " .. tostring(status)) or tostring(status)), level + 1)
  end
  return conn
end

---------------------------------------------------------------------------------------------------
-- statuses: Temporal's names in this API only (docs/temporal.md)
---------------------------------------------------------------------------------------------------
M.TERMINAL = {}
for _, s in ipairs(P.TERMINAL_STATUSES) do M.TERMINAL[s] = true end

function M.continued_to(rec)
  local r = type(rec) == "table" and rec.result
  if rec.status == WS.COMPLETED and type(r) == "table" and type(r.continued_as_new) == "string" then
    return r.continued_as_new
  end
  return nil
end

function M.temporal_status(rec)
  local s = rec.status
  if s == WS.PENDING or s == WS.RUNNING then return TS.RUNNING end
  if s == WS.COMPLETED then return M.continued_to(rec) and TS.CONTINUED_AS_NEW or TS.COMPLETED end
  if s == WS.FAILED then return rec.terminated == true and TS.TERMINATED or TS.FAILED end
  if s == WS.CANCELLED then return TS.CANCELED end
  return s
end

-- A visibility ExecutionStatus value -> engine filters, or nil when unknown.
local FILTERS = {
  running = { status = WS.PENDING .. "," .. WS.RUNNING },
  completed = { status = WS.COMPLETED, continued = "false" },
  failed = { status = WS.FAILED, terminated = "false" },
  canceled = { status = WS.CANCELLED },
  cancelled = { status = WS.CANCELLED },
  terminated = { status = WS.FAILED, terminated = "true" },
  continuedasnew = { status = WS.COMPLETED, continued = "true" },
  continued_as_new = { status = WS.COMPLETED, continued = "true" },
  timedout = { status = WS.TIMED_OUT },
  timed_out = { status = WS.TIMED_OUT },
}
M.STATUS_NAMES = "Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut"
function M.status_filter(name)
  if type(name) ~= "string" then return nil end
  return FILTERS[name:lower()]
end

-- An engine workflow record -> the execution shape of this API (native fields kept, Temporal status).
function M.execution(rec)
  if type(rec) ~= "table" then return rec end
  local out = {}
  for k, v in pairs(rec) do out[k] = v end
  out.native_status = rec.status
  out.status = M.temporal_status(rec)
  out.workflow_id = rec.id
  out.start_time = rec.created_at
  out.close_time = rec.completed_at
  out.continued_as = M.continued_to(rec)
  return out
end

---------------------------------------------------------------------------------------------------
-- waiting for a workflow to close, without polling in a loop
---------------------------------------------------------------------------------------------------
-- pump(secs): when this process runs temporal.worker handles, they must keep serving while we wait (one
-- Lua state runs one thing at a time): pump long-polls the engine for up to secs and runs what it gets.
M.pump = nil

-- Returns the workflow record once it is terminal; raises on timeout (level) or when stopping.
function M.wait_closed(conn, fname, wf_id, timeout, level)
  local deadline = timeout and (select(2, native.monotonic()) + timeout) or nil
  local watch
  local function close() if watch then native.watch_close(watch) end end
  while true do
    local okR, rec = pcall(M.api, conn, fname, 1, "GET", "/workflows/" .. pct(wf_id), nil, true)
    if not okR then close(); error(rec, level + 1) end
    if rec == nil then close(); error(sfmt("%s: workflow '%s' not found", fname, wf_id), level + 1) end
    if M.TERMINAL[rec.status] then close(); return rec end
    if select(2, native.stopping_now()) then close(); error(fname .. ": interrupted (the process is stopping)", level + 1) end
    local left = deadline and (deadline - select(2, native.monotonic())) or 5
    if left <= 0 then
      close()
      error(sfmt("%s: workflow '%s' still %s after %gs", fname, wf_id, M.temporal_status(rec), timeout), level + 1)
    end
    local step = math.min(left, 5) -- re-read now and then even with a live stream (best effort)
    if M.pump and M.pump(math.min(step, 2)) then
      -- served local tasks (or polled): re-read the workflow
    else
      if not watch then
        local okW, w = native.watch_open(conn.url, conn.token, wf_id, nil)
        if not okW then close(); error(fname .. ": " .. tostring(w), level + 1) end
        watch = w
      else
        native.watch_wait(watch, step)
      end
    end
  end
end

return M
