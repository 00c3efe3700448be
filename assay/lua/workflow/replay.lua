-- assay.workflow.replay: the workflow handler context (ctx) and the replay runner.
--
-- A workflow task runs the handler inside a coroutine. ctx calls whose outcome is already in the
-- history return it at once; the first call that needs the engine (an activity, a timer, a signal, a
-- child) suspends the coroutine with the commands to send, and the run ends. R.run replays from the
-- start; R.start + R.resume keep the suspended state (sticky workers): the next task's new events are
-- added to the index and the coroutine resumed, so the waiting call looks again exactly as a replay
-- from the start would at that point (every waiting call is a loop: look, else suspend).
-- Side effects, search-attribute upserts and query snapshots do not suspend: they ride with the
-- batch that ends the run. Commands are JSON-encoded when they are made (later mutation of a Lua
-- table cannot change what was recorded). Internal module; scripts use require("assay.workflow").
local native = require("assay._native")
local client = require("assay.workflow.client")
local deploy = require("assay.workflow.deploy")
local P = require("assay.protocol")
local E = P.EventType
local json = json
local sfmt, concat, sort = string.format, table.concat, table.sort
local co_running, co_yield = coroutine.running, coroutine.yield

local R = {}

local YIELD = setmetatable({}, { __name = "assay.workflow.yield" })
local CANCEL_MT = {
  __name = "assay.workflow.cancel",
  __tostring = function(e) return "workflow cancelled" .. (e.reason ~= nil and (": " .. tostring(e.reason)) or "") end,
}
function R.is_cancel(e) return type(e) == "table" and getmetatable(e) == CANCEL_MT end

local function errtext(e) return native.errtext(e) end

local function enc(v) return json.encode(v) end

-- '"type":"<CommandType>"' members for the command JSON written below (keys in sorted order)
local C = P.CommandType
local T = {}
for name, value in pairs(C) do T[name] = '"type":' .. enc(value) end

local function strip_prefix(msg) return (tostring(msg):gsub("^json%.encode: ", "")) end

-- Encode `v` for a command, or raise "<what> cannot be encoded as JSON: <why>" at the user's call site.
local function encode_for(what, v, level)
  local ok, s = pcall(json.encode, v)
  if not ok then error(sfmt("%s cannot be encoded as JSON: %s", what, strip_prefix(s)), level + 1) end
  return s
end

---------------------------------------------------------------------------------------------------
-- history index
---------------------------------------------------------------------------------------------------
local RAW_PAYLOAD = { [E.WorkflowStarted] = true, [E.WorkflowCompleted] = true }

-- Add `events` (ascending seq) to the index `idx` (a new one when nil); returns it.
function R.index(history, idx)
  idx = idx or { scheduled = {}, acts = {}, timers = {}, effects = {}, signals = {}, children = {},
    cancel = nil, started_at = nil, events = 0, last_seq = 0 }
  for _, ev in ipairs(history or {}) do
    local t = ev.event_type
    local p = ev.payload
    if not RAW_PAYLOAD[t] then p = client.maybe_json(p, "table") end
    local pt = type(p) == "table" and p or {}
    local seq = ev.seq or 0
    idx.events = idx.events + 1
    if seq > idx.last_seq then idx.last_seq = seq end
    if t == E.ActivityScheduled then
      if pt.activity_seq then idx.scheduled[pt.activity_seq] = pt.name end
    elseif t == E.ActivityCompleted or t == E.ActivityFailed then
      local k = pt.activity_seq
      if k and not idx.acts[k] then
        idx.acts[k] = { ok = (t == E.ActivityCompleted), result = pt.result, error = pt.error, name = pt.name, seq = seq }
      end
    elseif t == E.TimerFired then
      if pt.timer_seq and not idx.timers[pt.timer_seq] then idx.timers[pt.timer_seq] = seq end
    elseif t == E.SideEffectRecorded then
      local k = pt.side_effect_seq
      if k and not idx.effects[k] then idx.effects[k] = { value = pt.value, seq = seq } end -- nil is a valid value
    elseif t == E.SignalReceived then
      if pt.signal ~= nil then
        local name = tostring(pt.signal)
        local list = idx.signals[name] or {}
        list[#list + 1] = { seq = seq, payload = pt.payload }
        idx.signals[name] = list
      end
    elseif t == E.ChildWorkflowCompleted or t == E.ChildWorkflowFailed then
      local k = pt.child_workflow_id
      if k and not idx.children[k] then
        idx.children[k] = { ok = (t == E.ChildWorkflowCompleted), result = pt.result, error = pt.error, seq = seq }
      end
    elseif t == E.WorkflowCancelRequested then
      if not idx.cancel then idx.cancel = { reason = pt.reason, seq = seq } end
    elseif t == E.WorkflowStarted then
      idx.started_at = ev.timestamp
    end
  end
  return idx
end

---------------------------------------------------------------------------------------------------
-- ctx
---------------------------------------------------------------------------------------------------
local Ctx = {}
Ctx.__index = Ctx
R.Ctx = Ctx
deploy.install(Ctx) -- ctx:get_version, ctx:patched

local function cancel_error(rs, reason)
  rs.cancelled = true
  return setmetatable({ reason = reason }, CANCEL_MT)
end

-- A waiting call that is not answered by the history: raise the cancellation if one was requested,
-- else suspend the handler with `cmds` (a list of encoded commands). Returns when a sticky worker
-- resumes the run with more history: the caller then looks at the history again.
local function suspend(rs, cmds)
  if rs.idx.cancel then error(cancel_error(rs, rs.idx.cancel.reason), 0) end
  if co_running() ~= rs.co then
    error("ctx: waiting calls (activities, sleep, signals, children) must run in the workflow handler " ..
      "itself, not inside a nested coroutine or a query handler", 3)
  end
  co_yield(YIELD, cmds)
end

-- An outcome recorded after the cancellation request is not delivered: the call raises the
-- cancellation instead (steps that finished before the request replay normally).
local function after_cancel(rs, seq)
  local c = rs.idx.cancel
  if c and seq and seq > c.seq then error(cancel_error(rs, c.reason), 0) end
end

local function need_name(fn, what, v, level)
  if type(v) ~= "string" or v == "" then error(sfmt("ctx:%s: %s must be a non-empty string", fn, what), level + 1) end
end

local options = require("assay.workflow.options")
local ACTIVITY_OPTS = options.NAMES
R.activity_options = options.activity_options

local function schedule_activity(rs, seq, name, input, opts, level)
  if opts ~= nil and type(opts) ~= "table" then error("ctx:execute_activity: opts must be a table", level + 1) end
  local parts = { '"input":' .. encode_for(sfmt("input of activity '%s'", name), input, level + 1),
    '"name":' .. enc(name), '"seq":' .. seq, T.ScheduleActivity }
  if opts then
    local o = R.activity_options(opts, level + 1)
    if o.task_queue ~= nil then parts[#parts + 1] = '"task_queue":' .. enc(o.task_queue) end
    for _, k in ipairs(ACTIVITY_OPTS) do
      if o[k] ~= nil then parts[#parts + 1] = enc(k) .. ":" .. encode_for("activity option " .. k, o[k], level + 1) end
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function activity_outcome(rs, seq, name, level)
  local prev = rs.idx.scheduled[seq] or (rs.idx.acts[seq] and rs.idx.acts[seq].name)
  if prev ~= nil and prev ~= name then
    deploy.fail(rs, { event_seq = rs.d.act_ev[seq] or (rs.idx.acts[seq] and rs.idx.acts[seq].seq) or "?",
      history = sfmt("ActivityScheduled '%s' (activity #%d)", tostring(prev), seq),
      code = sfmt("schedules activity '%s' (activity #%d)", name, seq),
      message = sfmt("nondeterministic workflow: activity #%d was '%s' in the history, the code now runs '%s'",
        seq, tostring(prev), name) }, level + 1)
  end
  return rs.idx.acts[seq]
end

function Ctx:execute_activity(name, input, opts)
  local rs = self._rs
  need_name("execute_activity", "activity name", name, 2)
  rs.n_act = rs.n_act + 1
  local seq = rs.n_act
  local cmd
  while true do
    local r = activity_outcome(rs, seq, name, 2)
    if r then
      after_cancel(rs, r.seq)
      if r.ok then return r.result end
      error(sfmt("activity '%s' failed: %s", name, tostring(r.error)), 2)
    end
    cmd = cmd or schedule_activity(rs, seq, name, input, opts, 2)
    suspend(rs, { cmd })
  end
end

function Ctx:execute_parallel(list)
  local rs = self._rs
  if type(list) ~= "table" or #list == 0 then
    error("ctx:execute_parallel: expects a non-empty list of { name, input, opts }", 2)
  end
  local items, encoded = {}, {}
  for i, spec in ipairs(list) do
    if type(spec) ~= "table" then error(sfmt("ctx:execute_parallel: item %d must be a table", i), 2) end
    local name = spec.name or spec[1]
    local input = spec.input
    if input == nil then input = spec[2] end
    need_name("execute_parallel", sfmt("item %d name", i), name, 2)
    rs.n_act = rs.n_act + 1
    items[i] = { name = name, input = input, opts = spec.opts or spec[3], seq = rs.n_act }
  end
  while true do
    local results, pending, failure = {}, {}, nil
    for i, it in ipairs(items) do
      local r = activity_outcome(rs, it.seq, it.name, 2)
      if r then after_cancel(rs, r.seq) end
      if r == nil then
        encoded[i] = encoded[i] or schedule_activity(rs, it.seq, it.name, it.input, it.opts, 2)
        pending[#pending + 1] = encoded[i]
      elseif r.ok then
        results[i] = r.result
      elseif not failure then
        failure = sfmt("activity '%s' failed: %s", it.name, tostring(r.error))
      end
    end
    if #pending == 0 then
      if failure then error(failure, 2) end
      return results
    end
    suspend(rs, pending)
  end
end

function Ctx:sleep(seconds)
  local rs = self._rs
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("ctx:sleep: seconds must be a non-negative number", 2)
  end
  rs.n_timer = rs.n_timer + 1
  local seq = rs.n_timer
  while not rs.idx.timers[seq] do
    suspend(rs, { sfmt('{"duration_secs":%s,"seq":%d,%s}', enc(seconds * 1.0), seq, T.ScheduleTimer) })
  end
  after_cancel(rs, rs.idx.timers[seq])
end

-- Waits for the next signal `name`; returns received (boolean), payload. `level` is the error level
-- of the public method's caller.
local function wait_signal(rs, fname, name, timeout, level)
  need_name(fname, "signal name", name, level + 1)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0) then
    error("ctx:" .. fname .. ": timeout must be a positive number of seconds", level + 1)
  end
  rs.waits[name] = (rs.waits[name] or 0) + 1
  local cur = (rs.sig_cursor[name] or 0) + 1
  local function next_signal()
    local list = rs.idx.signals[name]
    return list and list[cur]
  end
  if timeout == nil then
    while true do
      local sig = next_signal()
      if sig then
        after_cancel(rs, sig.seq)
        rs.sig_cursor[name] = cur
        return true, sig.payload
      end
      suspend(rs, { '{"name":' .. enc(name) .. ',' .. T.WaitForSignal .. '}' })
    end
  end
  rs.n_timer = rs.n_timer + 1
  local tseq = rs.n_timer
  while true do
    local sig, fired = next_signal(), rs.idx.timers[tseq]
    -- Signal and timer both in history: the one with the lower event seq won the race.
    if sig and (not fired or sig.seq < fired) then
      after_cancel(rs, sig.seq)
      rs.sig_cursor[name] = cur
      return true, sig.payload
    end
    if fired then
      after_cancel(rs, fired)
      return false, nil
    end
    suspend(rs, {
      sfmt('{"duration_secs":%s,"seq":%d,%s}', enc(timeout * 1.0), tseq, T.ScheduleTimer),
      sfmt('{"name":%s,"timer_seq":%d,%s}', enc(name), tseq, T.WaitForSignal),
    })
  end
end

-- The payload of the next signal `name` (nil when the optional timeout fired first).
function Ctx:wait_for_signal(name, opts)
  if opts ~= nil and type(opts) ~= "table" then error("ctx:wait_for_signal: opts must be a table", 2) end
  local _, payload = wait_signal(self._rs, "wait_for_signal", name, opts and opts.timeout, 2)
  return payload
end

-- Temporal-era spelling (seed 004): the payload, or nil when the timeout fired first.
function Ctx:wait_signal(name, opts)
  if opts ~= nil and type(opts) ~= "table" then error("ctx:wait_signal: opts must be a table", 2) end
  local _, payload = wait_signal(self._rs, "wait_signal", name, opts and opts.timeout, 2)
  return payload
end

-- Like wait_for_signal with a timeout, but says which won: returns received, payload.
function Ctx:signal_or_timeout(name, timeout)
  if timeout == nil then error("ctx:signal_or_timeout: timeout is required", 2) end
  local received, payload = wait_signal(self._rs, "signal_or_timeout", name, timeout, 2)
  return received, payload
end

function Ctx:start_child_workflow(workflow_type, opts)
  local rs = self._rs
  need_name("start_child_workflow", "workflow type", workflow_type, 2)
  if type(opts) ~= "table" then error("ctx:start_child_workflow: opts with a workflow_id is required", 2) end
  need_name("start_child_workflow", "opts.workflow_id", opts.workflow_id, 2)
  local id = opts.workflow_id
  rs.children[tostring(id)] = true
  local cmd
  while true do
    local c = rs.idx.children[id]
    if c then
      after_cancel(rs, c.seq)
      if c.ok then return c.result end
      error(sfmt("child workflow '%s' failed: %s", id, tostring(c.error)), 2)
    end
    if not cmd then
      local parts = { '"input":' .. encode_for(sfmt("input of child workflow '%s'", id), opts.input, 2),
        T.StartChildWorkflow, '"workflow_id":' .. enc(id), '"workflow_type":' .. enc(workflow_type) }
      if opts.task_queue ~= nil then parts[#parts + 1] = '"task_queue":' .. enc(tostring(opts.task_queue)) end
      cmd = "{" .. concat(parts, ",") .. "}"
    end
    suspend(rs, { cmd })
  end
end

function Ctx:side_effect(name, fn)
  local rs = self._rs
  if type(name) == "function" and fn == nil then name, fn = "side_effect", name end
  need_name("side_effect", "name", name, 2)
  if type(fn) ~= "function" then error("ctx:side_effect: fn must be a function", 2) end
  rs.n_effect = rs.n_effect + 1
  local seq = rs.n_effect
  while true do
    local cached = rs.idx.effects[seq]
    if cached then
      after_cancel(rs, cached.seq)
      return cached.value
    end
    if rs.idx.cancel then error(cancel_error(rs, rs.idx.cancel.reason), 0) end
    if not rs.replay then break end
    -- replaying without side effects: the history ends here
    suspend(rs, { sfmt('{"name":%s,"seq":%d,"type":%s}', enc(name), seq, enc(C.RecordSideEffect)) })
  end
  local v = fn()
  local s = encode_for(sfmt("value of side effect '%s'", name), v, 2)
  rs.effects[#rs.effects + 1] = sfmt('{"name":%s,"seq":%d,%s,"value":%s}', enc(name), seq, T.RecordSideEffect, s)
  rs.idx.effects[seq] = { value = v }
  return v
end

function Ctx:register_query(name, fn)
  local rs = self._rs
  need_name("register_query", "query name", name, 2)
  if type(fn) ~= "function" then error("ctx:register_query: fn must be a function", 2) end
  if rs.queries[name] == nil then rs.query_order[#rs.query_order + 1] = name end
  rs.queries[name] = fn
end

function Ctx:upsert_search_attributes(patch)
  local rs = self._rs
  if type(patch) ~= "table" then error("ctx:upsert_search_attributes: patch must be a table", 2) end
  for k, v in pairs(patch) do
    if type(k) ~= "string" then error("ctx:upsert_search_attributes: keys must be strings", 2) end
    rs.upserts[k] = encode_for("search attribute " .. k, v, 2)
  end
end

function Ctx:continue_as_new(input)
  local rs = self._rs
  local cmd = '{"input":' .. encode_for("continue_as_new input", input, 2) .. ',' .. T.ContinueAsNew .. '}'
  rs.continued = true -- this run ends here: a sticky worker does not keep it
  while true do suspend(rs, { cmd }) end
end

-- Cancel this workflow from inside; the reason is recorded on WorkflowCancelled and as its error.
function Ctx:cancel(reason)
  if reason ~= nil then self._rs.cancel_reason = tostring(reason) end
  error(cancel_error(self._rs, reason), 0)
end

function Ctx:workflow_info()
  local t = self._rs.task
  return {
    workflow_id = t.workflow_id, workflow_type = t.workflow_type, namespace = t.namespace,
    task_queue = t.task_queue, queue = t.task_queue, run_id = t.run_id, parent_id = t.parent_id,
    attempt = t.attempt, start_time = self._rs.idx.started_at or t.created_at,
    search_attributes = client.maybe_json(t.search_attributes, "table"),
    history_length = self._rs.idx.events,
  }
end

---------------------------------------------------------------------------------------------------
-- runner
---------------------------------------------------------------------------------------------------
local function object_text(map, keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = enc(k) .. ":" .. map[k] end
  return "{" .. concat(parts, ",") .. "}"
end

local function fail_cmd(msg) return '{"error":' .. enc(tostring(msg)) .. ',' .. T.FailWorkflow .. '}' end
R.fail_cmd = fail_cmd

local function cancel_cmd(rs)
  if rs.cancel_reason == nil then return '{' .. T.CancelWorkflow .. '}' end
  return '{"reason":' .. enc(rs.cancel_reason) .. ',' .. T.CancelWorkflow .. '}'
end

-- A new run state for `task` (its history complete). `replay` (assay replay): side effects are not
-- run, the run stops where the history ends.
local function new_state(task, replay)
  return { task = task, idx = R.index(task.history), n_act = 0, n_timer = 0, n_effect = 0, sig_cursor = {},
    queries = {}, query_order = {}, upserts = {}, effects = {}, cancelled = false, children = {}, waits = {},
    d = deploy.index(task.history), replay = replay == true }
end

-- Resume (or start: `args` = { ctx, input }) the handler coroutine once; returns tail, summary.
local function advance(rs, handler, log, args)
  local task = rs.task
  if type(handler) ~= "function" then
    return { fail_cmd("no workflow handler registered for type: " .. tostring(task.workflow_type)) },
      C.FailWorkflow .. " (unknown type)"
  end
  local co = rs.co
  local ok, a, b
  if args then
    co = coroutine.create(handler)
    rs.co = co
    ok, a, b = coroutine.resume(co, args[1], args[2])
  else
    ok, a, b = coroutine.resume(co)
  end
  if not ok then
    if rs.cancelled or R.is_cancel(a) then return { cancel_cmd(rs) }, C.CancelWorkflow end
    local msg = errtext(a)
    log("warn", sfmt("workflow %s (%s) failed: %s\n%s", tostring(task.workflow_id), tostring(task.workflow_type),
      msg, debug.traceback(co, nil, 0)))
    return { fail_cmd(msg) }, C.FailWorkflow
  elseif coroutine.status(co) == "suspended" then
    if a == YIELD then
      rs.suspended = not rs.continued
      return b, "suspended"
    end
    return { fail_cmd("workflow handler called coroutine.yield outside ctx (not allowed in a handler)") },
      C.FailWorkflow
  elseif rs.cancelled then
    return { cancel_cmd(rs) }, C.CancelWorkflow
  end
  local okE, res = pcall(json.encode, a)
  if okE then return { '{"result":' .. res .. ',' .. T.CompleteWorkflow .. '}' }, C.CompleteWorkflow end
  return { fail_cmd(sfmt("workflow '%s' returned a value that cannot be encoded as JSON: %s",
    tostring(task.workflow_type), strip_prefix(res))) }, C.FailWorkflow
end

-- The command batch of a run that reached `tail` (queries' snapshot, side effects and version markers,
-- search attributes, then the tail), and the divergence check.
local function batch(rs, handler, log, tail, summary)
  local task = rs.task
  local cmds = {}
  -- Query handlers see the state this run reached; their snapshot goes first in the batch.
  if #rs.query_order > 0 then
    local values, names = {}, {}
    for _, name in ipairs(rs.query_order) do
      local okq, v = pcall(rs.queries[name])
      if okq and v ~= nil then
        local oke, s = pcall(json.encode, v)
        if oke then
          values[name] = s
          names[#names + 1] = name
        else
          log("warn", sfmt("query '%s' of workflow %s: %s", name, tostring(task.workflow_id), tostring(s)))
        end
      elseif not okq then
        log("debug", sfmt("query '%s' of workflow %s failed: %s", name, tostring(task.workflow_id), errtext(v)))
      end
    end
    if #names > 0 then
      sort(names)
      cmds[#cmds + 1] = '{"state":' .. object_text(values, names) .. ',' .. T.RecordSnapshot .. '}'
    end
  end
  for _, c in ipairs(rs.effects) do cmds[#cmds + 1] = c end
  local keys = {}
  for k in pairs(rs.upserts) do keys[#keys + 1] = k end
  if #keys > 0 then
    sort(keys)
    cmds[#cmds + 1] = '{"patch":' .. object_text(rs.upserts, keys) .. ',' .. T.UpsertSearchAttributes .. '}'
  end
  for _, c in ipairs(tail) do cmds[#cmds + 1] = c end
  local divergence = nil
  if type(handler) == "function" then divergence = deploy.check(rs, summary, tail) end
  return cmds, summary, divergence
end

local function begin(task, handler, log, replay)
  local rs = new_state(task, replay)
  local input = task.input
  if client.state.legacy then input = client.maybe_json(input) end
  local ctx = setmetatable({ _rs = rs, workflow_id = task.workflow_id, workflow_type = task.workflow_type,
    namespace = task.namespace, task_queue = task.task_queue, run_id = task.run_id }, Ctx)
  local tail, summary = advance(rs, handler, log, { ctx, input })
  local cmds, _, divergence = batch(rs, handler, log, tail, summary)
  return cmds, summary, divergence, rs
end

-- Run one workflow task from the start of its (complete) history. Returns the list of encoded
-- commands, a short summary for the logs, and the divergence (nil, or { event_seq, history, code,
-- message }) when the code did not follow the history: a worker then fails the workflow task instead
-- of sending the commands. `replay` (assay replay): side effects are not run, the run stops where the
-- history ends.
function R.run(task, handler, log, replay)
  local cmds, summary, divergence = begin(task, handler, log, replay)
  return cmds, summary, divergence
end

-- Like R.run, and also returns the run state: when rs.suspended is true (the handler waits for the
-- engine; not ended, not continued as new) R.resume can carry it on with the next task's new events.
function R.start(task, handler, log)
  return begin(task, handler, log, false)
end

-- Carry a suspended run state on with `task`, whose history holds only the events after the ones the
-- state has seen (the caller checked that). Returns cmds, summary, divergence like R.run: the same
-- commands a replay from the start of the whole history would produce.
function R.resume(rs, task, handler, log)
  if not rs.suspended then error("replay.resume: the run state is not suspended", 2) end
  rs.suspended = false
  rs.task, rs.effects = task, {}
  R.index(task.history, rs.idx)
  deploy.index(task.history, rs.d)
  local tail, summary = advance(rs, handler, log, nil)
  return batch(rs, handler, log, tail, summary)
end

return R
