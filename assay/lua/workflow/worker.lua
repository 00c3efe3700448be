-- assay.workflow.worker: handler registry and the listen loop (poll, run, report, heartbeat, stop).
-- Internal module; scripts use require("assay.workflow").
local native = require("assay._native")
local client = require("assay.workflow.client")
local replay = require("assay.workflow.replay")
local sticky = require("assay.workflow.sticky")
local P = require("assay.protocol")
local KIND = P.TaskKind
local json = json
local sfmt, concat = string.format, table.concat
local state, call, pct = client.state, client.call, client.pct
local sleep, os_hostname = sleep, os.hostname

-- Internal natives answer (true, value); these unwrap the value.
local function mono() return select(2, native.monotonic()) end
local function stopping() return select(2, native.stopping()) end
local function wait(secs) return select(2, native.wait(secs)) end

local W = { workflows = {}, activities = {}, workflow_names = {}, activity_names = {} }

local function log(level, msg) native.log(level, "assay.lua.worker", msg) end

-- ASSAY_WORKER_* defaults, declared in assay/config.py (WorkerSettings); a bad value is an error naming it
local function settings(where)
  local ok, s = native.settings()
  if not ok then error(where .. ": " .. tostring(s), 3) end
  return s
end

function W.define(name, fn)
  if type(name) ~= "string" or name == "" then error("workflow.define: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("workflow.define: handler must be a function", 2) end
  if not W.workflows[name] then W.workflow_names[#W.workflow_names + 1] = name end
  W.workflows[name] = fn
end

function W.activity(name, fn)
  if type(name) ~= "string" or name == "" then error("workflow.activity: name must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("workflow.activity: handler must be a function", 2) end
  if not W.activities[name] then W.activity_names[#W.activity_names + 1] = name end
  W.activities[name] = fn
end

---------------------------------------------------------------------------------------------------
-- reporting results: retried while the engine is unreachable, bounded
---------------------------------------------------------------------------------------------------
local function deliver(what, method, path, body)
  local delay, deadline = 0.25, mono() + 60
  while true do
    local ok, status, value, raw = pcall(call, method, path, body, { timeout = 30 })
    if ok then return status, value, raw end
    if mono() > deadline then
      log("error", sfmt("%s: giving up, engine unreachable: %s", what, tostring(status)))
      return nil
    end
    log("warn", sfmt("%s: engine unreachable (%s); retrying in %.1fs", what, tostring(status), delay))
    sleep(delay)
    delay = math.min(delay * 2, 5)
  end
end

---------------------------------------------------------------------------------------------------
-- workflow tasks
---------------------------------------------------------------------------------------------------
-- Workflows whose commands the engine rejected (HTTP 400), keyed by id: {events = history length,
-- error = message}. The engine hands such a workflow out again; the next run with the same history
-- fails it with the engine's message instead of looping.
local rejected = {}

-- The code could not follow the workflow's history (a changed step): fail the workflow task, keeping the
-- workflow, so that deploying fixed code (or a reset) lets it continue. Returns false when the engine
-- has no such endpoint (an upstream engine): the caller then fails the workflow as before.
local function fail_task(task, message)
  local what = sfmt("workflow %s", tostring(task.workflow_id))
  log("error", sfmt("%s (%s): workflow task failed, the workflow is kept: %s", what, tostring(task.workflow_type),
    message))
  local body = '{"error":' .. json.encode(message) .. ',"worker_id":' .. json.encode(W.worker_id) .. "}"
  local status, value, raw = deliver(what, "POST", "/workflow-tasks/" .. pct(task.workflow_id) .. "/fail", body)
  if status == 404 and not (type(value) == "table" and tostring(value.error):match("workflow")) or status == 405 then
    return false
  end
  if status ~= nil and status >= 400 and status ~= 409 then
    log("warn", sfmt("%s: reporting the failed task answered HTTP %d: %s", what, status,
      tostring(type(value) == "table" and value.error or raw)))
  end
  return true
end

-- A sticky worker (W.sticky = its cache, see assay.workflow.sticky) carries a kept run state on with
-- the task's new events; else it replays from the start of the whole history (fetched when the task
-- carries only part of it). Returns cmds, summary, divergence, the run state (nil: not kept), how.
local function replay_task(task, handler, what)
  local cache, id = W.sticky, task.workflow_id
  local entry = cache and cache:get(id)
  if cache then cache:drop(id) end -- taken out while it runs: kept again only once the engine took the commands
  local after = math.tointeger(tonumber(task[sticky.F.history_after]))
  if entry and after ~= nil and entry.last_seq == after and entry.rs.task.run_id == task.run_id
    and task[sticky.F.history_next_after] == nil and type(handler) == "function" then
    local cmds, summary, divergence = replay.resume(entry.rs, task, handler, log)
    return cmds, summary, divergence, entry.rs, sfmt("sticky, %d new event(s)", #(task.history or {}))
  end
  local how = "replayed"
  if sticky.partial(task) then
    local history, err = sticky.full_history(task, function(path) return deliver(what, "GET", path) end)
    if not history then return nil, err end
    if after ~= nil then
      how = entry and sfmt("state at event %s, task after %d: full history fetched", tostring(entry.last_seq), after)
        or "no state kept: full history fetched"
    else
      how = "history pages fetched"
    end
    task.history = history
  end
  local cmds, summary, divergence, rs = replay.start(task, handler, log)
  return cmds, summary, divergence, rs, sfmt("%s, %d event(s)", how, #(task.history or {}))
end

local function run_workflow_task(task)
  local handler = W.workflows[task.workflow_type]
  local what = sfmt("workflow %s", tostring(task.workflow_id))
  local cmds, summary, rs, how
  local r = rejected[task.workflow_id]
  rejected[task.workflow_id] = nil
  local last = sticky.last_seq(task)
  if r and r.events == last then
    if W.sticky then W.sticky:drop(task.workflow_id) end
    cmds = { replay.fail_cmd("the engine rejected the workflow's commands: " .. r.error) }
    summary = P.CommandType.FailWorkflow .. " (commands rejected)"
  else
    local divergence
    cmds, summary, divergence, rs, how = replay_task(task, handler, what)
    if cmds == nil then -- the history could not be fetched: the engine hands the task out again
      log("error", sfmt("%s: %s; the task is left to time out", what, tostring(summary)))
      return
    end
    if divergence then
      rs = nil
      if fail_task(task, divergence.message) then return end
    end
  end
  -- eager dispatch (opt-in; an engine without it ignores the fields and answers an empty 200): the
  -- engine may hand back an activity this batch schedules (this slot is free once we are done) and
  -- the workflow's next task, so they run here without a poll.
  local eager = state.legacy and "" or ',"eager_activities":1,"eager_workflow_task":true'
  local body = '{"commands":[' .. concat(cmds, ",") .. "]" .. eager .. ',"worker_id":' .. json.encode(W.worker_id) .. "}"
  local status, value, raw = deliver(what, "POST", "/workflow-tasks/" .. pct(task.workflow_id) .. "/commands", body)
  if status == nil then return end
  if status == 200 or status == 201 or status == 204 then
    log("debug", sfmt("%s (%s): %d command(s), %s (%s)", what, tostring(task.workflow_type), #cmds, summary,
      how or "not replayed"))
    -- keep the suspended run for the workflow's next task (only when the engine hands us partial histories)
    if W.sticky and rs and rs.suspended and task[sticky.F.history_last_seq] ~= nil then
      W.sticky:put(task.workflow_id, rs, last)
    end
    if type(value) == "table" then
      local more = {}
      for _, a in ipairs(type(value.activity_tasks) == "table" and value.activity_tasks or {}) do
        more[#more + 1] = { KIND.activity_task, a }
      end
      if type(value.workflow_task) == "table" then more[#more + 1] = { KIND.workflow_task, value.workflow_task } end
      return more
    end
  elseif status == 409 then
    log("info", sfmt("%s: lease lost (another worker took the task over); commands discarded", what))
  else
    local msg = tostring(type(value) == "table" and value.error or raw)
    log("error", sfmt("%s: engine rejected the commands (HTTP %d): %s", what, status, msg))
    if status == 400 then rejected[task.workflow_id] = { events = last, error = msg } end
  end
end

---------------------------------------------------------------------------------------------------
-- activity tasks
---------------------------------------------------------------------------------------------------
local ActCtx = {}
ActCtx.__index = ActCtx
W.ActCtx = ActCtx

-- Report liveness (and progress details); returns true when the activity should stop because its
-- workflow was cancelled or the task no longer belongs to this worker.
function ActCtx:heartbeat(details)
  local okE, s = pcall(json.encode, details)
  if not okE then error("actx:heartbeat: details cannot be encoded as JSON: " .. tostring(s), 2) end
  local ok, status, value = pcall(call, "POST", "/tasks/" .. pct(self.activity_id) .. "/heartbeat",
    '{"details":' .. s .. ',"worker_id":' .. json.encode(W.worker_id) .. "}", { timeout = 10 })
  if not ok then
    log("debug", "activity heartbeat failed: " .. tostring(status))
    return false
  end
  if status == 409 or status == 404 then return true end
  return type(value) == "table" and value.cancel_requested == true
end

function ActCtx:info()
  local t = self._task
  return { activity_id = t.id, workflow_id = t.workflow_id, name = t.name, seq = t.seq, attempt = t.attempt,
    max_attempts = t.max_attempts, task_queue = t.task_queue, start_to_close_secs = t.start_to_close_secs,
    heartbeat_timeout_secs = t.heartbeat_timeout_secs }
end

local function run_activity_task(task)
  local name = tostring(task.name)
  local what = sfmt("activity %s #%s (%s)", name, tostring(task.id), tostring(task.workflow_id))
  local input = task.input
  if state.legacy then input = client.maybe_json(input) end
  local actx = setmetatable({ activity_id = task.id, task_id = task.id, id = task.id, workflow_id = task.workflow_id,
    name = name, attempt = task.attempt, max_attempts = task.max_attempts, seq = task.seq, _task = task }, ActCtx)
  local fn = W.activities[name]
  local path = "/tasks/" .. pct(task.id)
  local verb, body
  local wid = json.encode(W.worker_id)
  if not fn then
    verb, body = "fail", { error = "No handler registered for activity: " .. name, worker_id = W.worker_id }
  else
    local tb
    local ok, res = xpcall(fn, function(e)
      tb = debug.traceback(nil, 2)
      return e
    end, actx, input)
    if ok then
      local okE, s = pcall(json.encode, res)
      if okE then
        verb, body = "complete", "{" .. (state.legacy and "" or '"eager_workflow_task":true,') .. '"result":' .. s ..
          ',"worker_id":' .. wid .. "}"
      else
        verb, body = "fail", { error = sfmt("activity '%s' returned a value that cannot be encoded as JSON: %s", name,
          (tostring(s):gsub("^json%.encode: ", ""))), worker_id = W.worker_id }
      end
    else
      local msg = native.errtext(res)
      log("warn", sfmt("%s attempt %s failed: %s\n%s", what, tostring(task.attempt), msg, tostring(tb)))
      -- error({ message = "...", non_retryable = true }) skips the remaining attempts
      local final = type(res) == "table" and rawget(res, "non_retryable") == true or nil
      verb, body = "fail", { error = msg, worker_id = W.worker_id, non_retryable = final,
        eager_workflow_task = not state.legacy or nil }
    end
  end
  local status, value, raw = deliver(what, "POST", path .. "/" .. verb, body)
  if status == nil then return end
  if status == 200 or status == 201 or status == 204 then
    log("debug", sfmt("%s: %s", what, verb == "complete" and "completed" or "failed"))
    if type(value) == "table" and type(value.workflow_task) == "table" then
      return { { KIND.workflow_task, value.workflow_task } } -- eager: the workflow task it made ready
    end
  elseif status == 409 or status == 404 then
    log("info", sfmt("%s: no longer held by this worker (cancelled, timed out or reassigned); result discarded", what))
  else
    local msg = type(value) == "table" and value.error or raw
    log("error", sfmt("%s: engine rejected the %s (HTTP %d): %s", what, verb, status, tostring(msg)))
  end
end

---------------------------------------------------------------------------------------------------
-- polling
---------------------------------------------------------------------------------------------------
local RETRY_AFTER = P.RETRY_AFTER -- empty poll answers: seconds to wait before polling again (opt-in)
local MAX_RETRY_AFTER = 60

local function poll_combined(cfg)
  local t0 = mono()
  local body = sfmt('{"activities":%s,"max_tasks":%d,"queue":%s,%s:true,"wait_secs":%s,"worker_id":%s,' ..
    '"workflows":%s}',
    tostring(#W.activity_names > 0), cfg.max_tasks, json.encode(cfg.queue), json.encode(RETRY_AFTER),
    json.encode(cfg.wait_secs * 1.0),
    json.encode(W.worker_id), tostring(#W.workflow_names > 0))
  local status, value, raw = call("POST", "/poll", body, { timeout = cfg.wait_secs + 15, interruptible = true })
  if status == 0 then return nil end -- aborted: stopping
  if status == 404 or status == 405 then
    state.legacy = true
    log("info", "engine has no combined /poll endpoint; using the separate poll endpoints")
    return nil
  end
  if status ~= 200 then
    error(sfmt("poll answered HTTP %d: %s", status, type(value) == "table" and tostring(value.error) or tostring(raw)), 0)
  end
  if type(value) == "table" and type(value.tasks) == "table" and #value.tasks > 0 then -- a batch (max_tasks)
    cfg.quick_empty = 0
    local list = {}
    for _, item in ipairs(value.tasks) do list[#list + 1] = { item.kind, item.task } end
    return list
  end
  if type(value) == "table" and value.kind ~= nil and type(value.task) == "table" then
    cfg.quick_empty = 0
    return { { value.kind, value.task } }
  end
  -- The engine says when to come back (it holds no more polls): wait that long, or until we stop.
  local back = type(value) == "table" and tonumber(value[RETRY_AFTER]) or nil
  if back and back > 0 and back == back then
    cfg.quick_empty = 0
    wait(math.min(back, MAX_RETRY_AFTER))
    return nil
  end
  -- An empty answer long before wait_secs: the engine is saving threads. Do not spin.
  if mono() - t0 < math.min(0.05, cfg.wait_secs) then
    cfg.quick_empty = cfg.quick_empty + 1
    if cfg.quick_empty > 1 then wait(0.25) end
  else
    cfg.quick_empty = 0
  end
  return nil
end

local function poll_legacy(cfg)
  local who = sfmt('{"queue":%s,"worker_id":%s}', json.encode(cfg.queue), json.encode(W.worker_id))
  if #W.workflow_names > 0 then
    local status, value = call("POST", "/workflow-tasks/poll", who, { timeout = 40, interruptible = true })
    if status == 200 and type(value) == "table" and value.workflow_id then return { { KIND.workflow_task, value } } end
  end
  if #W.activity_names > 0 then
    local status, value = call("POST", "/tasks/poll", who, { timeout = 40, interruptible = true })
    if status == 200 and type(value) == "table" and value.id then return { { KIND.activity_task, value } } end
  end
  wait(0.5)
  return nil
end

-- Run leased tasks ({ {kind, task}, ... }) in turn; the ones the engine hands back (eager dispatch) run
-- before the rest. Returns how many ran.
local function run_all(tasks)
  local pending, ran = {}, 0
  for i = #(tasks or {}), 1, -1 do pending[#pending + 1] = tasks[i] end
  while #pending > 0 do
    local item = table.remove(pending)
    local kind, task, more = item[1], item[2], nil
    if kind == KIND.workflow_task then
      more = run_workflow_task(task)
    elseif kind == KIND.activity_task then
      more = run_activity_task(task)
    elseif kind ~= nil then
      log("warn", "unknown task kind from the engine: " .. tostring(kind))
    end
    ran = ran + 1
    for i = #(more or {}), 1, -1 do pending[#pending + 1] = more[i] end
  end
  return ran
end

local function loop(cfg)
  local backoff, last_err = 0, nil
  while not stopping() do
    local ok, tasks
    if state.legacy then
      ok, tasks = pcall(poll_legacy, cfg)
    else
      ok, tasks = pcall(poll_combined, cfg)
    end
    if not ok then
      if stopping() then break end
      backoff = backoff == 0 and cfg.min_backoff or math.min(backoff * 2, cfg.max_backoff)
      local msg = tostring(tasks)
      -- log each new problem once (an HTTP error such as 401 is reported as such), then quietly retry
      local what = msg:match("^poll answered HTTP") and msg or ("engine unreachable (" .. msg .. ")")
      log(what ~= last_err and "warn" or "debug", sfmt("%s; retrying in %.2fs", what, backoff))
      last_err = what
      wait(backoff)
    else
      if backoff > 0 then
        log("info", "engine reachable again")
        backoff, last_err = 0, nil
      end
      run_all(tasks)
    end
  end
end

---------------------------------------------------------------------------------------------------
-- listen
---------------------------------------------------------------------------------------------------
local function register(cfg)
  local body = json.object({
    identity = cfg.identity, queue = cfg.queue, namespace = cfg.namespace,
    workflows = json.array(W.workflow_names), activities = json.array(W.activity_names),
    max_concurrent_workflows = cfg.max_concurrent_workflows,
    max_concurrent_activities = cfg.max_concurrent_activities,
    heartbeat_interval_secs = cfg.heartbeat_interval * 1.0,
    build_id = W.build_id(),
    [P.STICKY] = cfg.sticky or nil, -- opt-in: partial histories (an engine without it ignores the field)
  })
  local backoff = cfg.min_backoff
  while true do
    local ok, status, value, raw = pcall(call, "POST", "/workers/register", body)
    if ok and (status == 200 or status == 201) and type(value) == "table" and value.worker_id then
      return value.worker_id, body, value[P.POLL_IS_HEARTBEAT] == true
    end
    if ok and status >= 400 and status < 500 then
      error(sfmt("workflow.listen: worker registration refused (HTTP %d): %s", status,
        type(value) == "table" and tostring(value.error) or tostring(raw)), 0)
    end
    log("warn", sfmt("worker registration failed (%s); retrying in %.2fs",
      ok and ("HTTP " .. tostring(status)) or tostring(status), backoff))
    if wait(backoff) then return nil end
    backoff = math.min(backoff * 2, cfg.max_backoff)
  end
end

local REPLICA_DONE = { __assay_replica_done = true }

-- The worker's code version: ASSAY_BUILD_ID (declared in assay/config.py), else the first 12 hex of the
-- worker file's sha256.
function W.build_id()
  local ok, s = native.settings("build_id")
  if ok and type(s.build_id) == "string" and s.build_id ~= "" then return s.build_id end
  local _, id = native.build_id()
  return id
end

-- `assay replay`: replay one exported history (JSON text of {workflow, events}) through the handlers this
-- file defined, with no side effects. Returns JSON text {ok, outcome, divergence}.
function W.replay_check(text)
  local doc = json.parse(text)
  local wf = type(doc.workflow) == "table" and doc.workflow or {}
  local history = {}
  for i, ev in ipairs(doc.events or {}) do
    history[i] = { seq = ev.seq, event_type = ev.event_type, payload = ev.payload, timestamp = ev.timestamp }
  end
  local task = { workflow_id = wf.id, workflow_type = wf.workflow_type, namespace = wf.namespace,
    task_queue = wf.task_queue, run_id = wf.run_id, parent_id = wf.parent_id, input = wf.input,
    search_attributes = wf.search_attributes, created_at = wf.created_at, attempt = 1, history = history }
  local handler = W.workflows[tostring(wf.workflow_type)]
  if type(handler) ~= "function" then
    return json.encode({ ok = false, outcome = "no handler",
      error = "this worker file defines no workflow type '" .. tostring(wf.workflow_type) .. "'" })
  end
  local _, summary, divergence = replay.run(task, handler, function() end, true)
  if divergence then
    return json.encode({ ok = false, outcome = summary, divergence = { event_seq = divergence.event_seq,
      history = divergence.history, code = divergence.code, message = divergence.message } })
  end
  return json.encode({ ok = true, outcome = summary })
end

function W.listen(opts)
  if select(2, native.replay_mode()) then error({ __assay_replay_loaded = true }, 0) end -- assay replay: stop here
  if not state.handle then error("workflow.listen: call workflow.connect(url) first", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("workflow.listen: opts must be a table", 2) end
  opts = opts or {}
  if #W.workflow_names == 0 and #W.activity_names == 0 then
    error("workflow.listen: register a workflow (workflow.define) or an activity (workflow.activity) first", 2)
  end
  local defaults = settings("workflow.listen")
  local concurrency = math.floor(tonumber(opts.concurrency) or defaults.concurrency)
  if concurrency < 1 then error("workflow.listen: concurrency must be at least 1", 2) end
  local cfg = {
    queue = opts.queue or P.DEFAULT_TASK_QUEUE,
    namespace = opts.namespace or P.DEFAULT_NAMESPACE,
    identity = opts.identity or ("assay-worker-" .. os_hostname()),
    wait_secs = tonumber(opts.poll_wait_secs) or defaults.poll_wait_secs,
    heartbeat_interval = tonumber(opts.heartbeat_interval_secs) or defaults.heartbeat_secs,
    min_backoff = tonumber(opts.min_backoff_secs) or 0.5,
    max_backoff = tonumber(opts.max_backoff_secs) or defaults.max_backoff_secs,
    max_concurrent_workflows = opts.max_concurrent_workflows or concurrency,
    max_concurrent_activities = opts.max_concurrent_activities or concurrency,
    quick_empty = 0,
    -- tasks claimed per poll (opt-in batch; an engine without it answers one task as before)
    max_tasks = math.max(1, math.min(100, math.floor(tonumber(opts.max_tasks) or defaults.max_tasks))),
    -- workflows whose suspended run this worker keeps between tasks (sticky; 0: off). Extra slots
    -- (concurrency > 1) share one worker id but not Lua states, so such a worker is not sticky.
    sticky_cache = math.max(0, math.floor(tonumber(opts.sticky_cache) or defaults.sticky_cache)),
  }
  cfg.sticky = cfg.sticky_cache > 0 and concurrency == 1 and #W.workflow_names > 0
  W.sticky = cfg.sticky and sticky.cache(cfg.sticky_cache) or nil
  cfg.wait_secs = math.max(0, math.min(60, cfg.wait_secs))
  local _, replica = native.replica_info()
  if replica then
    W.worker_id = replica.worker_id
    loop(cfg)
    error(REPLICA_DONE, 0) -- an extra slot ends here: the rest of the script belongs to the main slot
  end
  native.install_stop()
  local worker_id, reg, poll_is_heartbeat = register(cfg)
  if not worker_id then
    native.uninstall_stop()
    return false
  end
  W.worker_id = worker_id
  reg.worker_id = worker_id
  -- On an engine that counts polls as heartbeats, an idle worker (every Lua state inside a poll) beats
  -- only every idle_heartbeat_secs; holding work, every heartbeat_interval.
  local _, hb = native.heartbeat_start(state.handle, client.BASE .. "/workers/heartbeat", json.encode(reg),
    cfg.heartbeat_interval, poll_is_heartbeat and math.max(cfg.heartbeat_interval, defaults.idle_heartbeat_secs)
    or nil, concurrency)
  log("info", sfmt("worker %s listening on queue '%s' (namespace %s, %d workflow type(s), %d activity type(s)%s)",
    worker_id, cfg.queue, cfg.namespace, #W.workflow_names, #W.activity_names,
    concurrency > 1 and sfmt(", %d slots", concurrency) or ""))
  if concurrency > 1 then
    native.spawn_replicas(concurrency - 1, { worker_id = worker_id })
  end
  local ok, err = pcall(loop, cfg)
  if concurrency > 1 then
    native.request_stop()
    native.join_replicas()
  end
  -- Tell the engine we are gone so it ends our held polls and frees our leases. Best effort: an
  -- engine without the endpoint answers 404, and an unreachable one is simply not told.
  pcall(call, "POST", "/workers/" .. pct(worker_id) .. "/deregister", "{}", { timeout = 2 })
  native.heartbeat_stop(hb)
  native.uninstall_stop()
  if not ok then error(err, 0) end
  log("info", "worker " .. worker_id .. " stopped")
  return true
end

-- The pieces the Temporal-era worker (assay.temporal.global) drives from its own loop.
W.internal = { run_workflow_task = run_workflow_task, run_activity_task = run_activity_task,
  run_all = run_all, poll = poll_combined, register = register }

return W
