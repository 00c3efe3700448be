-- assay.workflow.deploy: what makes changing workflow code safe (used by assay.workflow.replay).
--
-- * ctx:get_version(change_id, min_supported, max_supported) and ctx:patched(change_id): a marker in the
--   history -> its version (outside [min, max]: the workflow task fails, the workflow is kept); no marker
--   and the history already holds commands this code has not reached (an execution started by older
--   code) -> min_supported, nothing recorded; at the frontier -> max_supported, recorded with a
--   RecordVersion command (which consumes no seq).
-- * The divergence check: after a run, every command the history holds (activities, timers, side
--   effects, children, and the way the workflow ended) must have been reached by the code. The first
--   one that was not is reported as (event seq, what the history has, what the code did); a live worker
--   then fails the workflow task instead of sending commands, and `assay replay` reports it.
-- Internal module.
local json = json
local P = require("assay.protocol")
local E, C = P.EventType, P.CommandType
local sfmt = string.format

local D = {}

local function decode(p)
  if type(p) == "string" then
    local ok, v = pcall(json.decode, p)
    if ok then return v end
  end
  return p
end

-- The parts of a history this module needs: version markers and the commands the code must reach.
-- `d`: an index to add `history` (the events after the ones it has seen) to; nil: a new one.
function D.index(history, d)
  d = d or { versions = {}, cmds = {}, act_ev = {}, finish = nil, signals = {}, scan = 1 }
  local signals = d.signals -- name -> signals received so far
  for _, ev in ipairs(history or {}) do
    local t, seq = ev.event_type, ev.seq or 0
    local p = t == E.WorkflowCompleted and ev.payload or decode(ev.payload)
    local pt = type(p) == "table" and p or {}
    if t == E.VersionMarkerRecorded then
      local cur = type(pt.change_id) == "string" and d.versions[pt.change_id]
      if cur == nil then
        d.versions[pt.change_id] = { version = math.tointeger(pt.version) or pt.version, seq = seq }
      elseif cur and cur.seq == nil then
        cur.seq = seq -- the marker a run of this state recorded (a sticky worker's state lives on)
      end
    elseif t == E.ActivityScheduled and math.tointeger(pt.activity_seq) then
      local k = math.tointeger(pt.activity_seq)
      if not d.act_ev[k] then
        d.act_ev[k] = seq
        d.cmds[#d.cmds + 1] = { kind = "activity", key = k, seq = seq,
          desc = sfmt("ActivityScheduled '%s' (activity #%d)", tostring(pt.name), k) }
      end
    elseif t == E.TimerScheduled and math.tointeger(pt.timer_seq) then
      d.cmds[#d.cmds + 1] = { kind = "timer", key = math.tointeger(pt.timer_seq), seq = seq,
        desc = sfmt("TimerScheduled %ss (timer #%d)", tostring(pt.duration_secs), pt.timer_seq) }
    elseif t == E.SideEffectRecorded and math.tointeger(pt.side_effect_seq) then
      d.cmds[#d.cmds + 1] = { kind = "effect", key = math.tointeger(pt.side_effect_seq), seq = seq,
        desc = sfmt("SideEffectRecorded '%s' (#%d)", tostring(pt.name), pt.side_effect_seq) }
    elseif t == E.SignalReceived and pt.signal ~= nil then
      signals[tostring(pt.signal)] = (signals[tostring(pt.signal)] or 0) + 1
    elseif t == E.WorkflowAwaitingSignal and pt.signal ~= nil then
      -- The code waited for this signal at least once. (Not "signals-so-far + 1": a signal that arrives
      -- while the task that waits is in flight is recorded BEFORE the wait event, and counting it made
      -- a plain start + signal race look nondeterministic.)
      local name = tostring(pt.signal)
      d.cmds[#d.cmds + 1] = { kind = "wait", key = name, need = 1, seq = seq,
        desc = sfmt("WorkflowAwaitingSignal '%s'", name) }
    elseif t == E.ChildWorkflowStarted and pt.child_workflow_id ~= nil then
      d.cmds[#d.cmds + 1] = { kind = "child", key = tostring(pt.child_workflow_id), seq = seq,
        desc = sfmt("ChildWorkflowStarted '%s'", tostring(pt.child_workflow_id)) }
    elseif not d.finish and (t == E.WorkflowCompleted or t == E.WorkflowFailed) then
      -- only the code's own endings: a terminate or an engine-side ending says nothing about the code
      if t == E.WorkflowCompleted then
        local cont = type(p) == "table" and p.continued_as_new
        d.finish = { seq = seq, want = cont and C.ContinueAsNew or C.CompleteWorkflow,
          desc = cont and "WorkflowCompleted (continued as new)" or E.WorkflowCompleted }
      elseif not pt.terminated then
        d.finish = { seq = seq, want = C.FailWorkflow, desc = sfmt("WorkflowFailed (%s)", tostring(pt.error)) }
      end
    end
  end
  return d
end

local function reached(rs, c)
  if c.kind == "activity" then return c.key <= rs.n_act end
  if c.kind == "timer" then return c.key <= rs.n_timer end
  if c.kind == "effect" then return c.key <= rs.n_effect end
  if c.kind == "wait" then return (rs.waits[c.key] or 0) >= c.need end
  return rs.children[c.key] == true
end

-- The first command of the history this run has not reached (nil: all reached). What a run reached
-- only grows, so the scan resumes where the last one stopped (a sticky run state is not O(history)).
local function first_unreached(rs)
  local d = rs.d
  local cmds, i = d.cmds, d.scan
  while cmds[i] and reached(rs, cmds[i]) do i = i + 1 end
  d.scan = i
  return cmds[i]
end

-- True when the history already holds something this run of the code has not reached yet: the
-- execution was started by code that went further, so a new branch point must take the old path.
local function behind(rs)
  if rs.d.finish then return true end
  return first_unreached(rs) ~= nil
end

function D.message(f)
  return sfmt("nondeterministic workflow: event %s: the history has %s; the code %s",
    tostring(f.event_seq), f.history, f.code)
end

-- Record a divergence found while the handler runs (the first one wins) and raise it.
function D.fail(rs, f, level)
  rs.nondet = rs.nondet or f
  error(f.message or D.message(f), level + 1)
end

local function describe_cmd(c)
  local t = type(c) == "table" and c.type or "?"
  if t == C.ScheduleActivity then return sfmt("schedules activity '%s' (activity #%s)", tostring(c.name), tostring(c.seq)) end
  if t == C.ScheduleTimer then return sfmt("starts a %ss timer (timer #%s)", tostring(c.duration_secs), tostring(c.seq)) end
  if t == C.WaitForSignal then return sfmt("waits for signal '%s'", tostring(c.name)) end
  if t == C.StartChildWorkflow then return sfmt("starts child workflow '%s'", tostring(c.workflow_id)) end
  if t == C.RecordSideEffect then return sfmt("records side effect '%s' (#%s)", tostring(c.name), tostring(c.seq)) end
  if t == C.ContinueAsNew then return "continues as new" end
  if t == C.CompleteWorkflow then return "completes the workflow" end
  if t == C.FailWorkflow then return "fails the workflow: " .. tostring(c.error) end
  if t == C.CancelWorkflow then return "cancels the workflow" end
  return "sends " .. tostring(t)
end

local function outcome(summary, tail)
  local first = tail and tail[1] and decode(tail[1]) or nil
  local kind = type(first) == "table" and first.type or summary
  if summary == "suspended" and kind ~= C.ContinueAsNew then kind = "suspended" end
  return kind, describe_cmd(first)
end

-- After a run: nil when the code reached everything the history holds, else the first divergence
-- { event_seq, history, code, message }.
function D.check(rs, summary, tail)
  if rs.nondet then
    rs.nondet.message = rs.nondet.message or D.message(rs.nondet)
    return rs.nondet
  end
  if rs.cancelled then return nil end
  local d = rs.d
  local kind, did = outcome(summary, tail)
  local c = first_unreached(rs)
  if c then
    local f = { event_seq = c.seq, history = c.desc, code = did }
    f.message = D.message(f)
    return f
  end
  if d.finish and kind ~= d.finish.want then
    local f = { event_seq = d.finish.seq, history = d.finish.desc, code = did }
    f.message = D.message(f)
    return f
  end
  return nil
end

local function need_int(fn, what, v)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(sfmt("ctx:%s: %s must be an integer", fn, what), 3)
  end
  return math.tointeger(v)
end

-- Adds get_version / patched to the ctx class.
function D.install(Ctx)
  function Ctx:get_version(change_id, min_supported, max_supported)
    local rs = self._rs
    if type(change_id) ~= "string" or change_id == "" then
      error("ctx:get_version: change_id must be a non-empty string", 2)
    end
    local lo = need_int("get_version", "min_supported", min_supported)
    local hi = need_int("get_version", "max_supported", max_supported)
    if lo > hi then error("ctx:get_version: min_supported is greater than max_supported", 2) end
    local m = rs.d.versions[change_id]
    if m then
      local v = m.version
      if math.type(v) ~= "integer" or v < lo or v > hi then
        D.fail(rs, { event_seq = m.seq or "?", history = sfmt("VersionMarkerRecorded '%s' = %s", change_id, tostring(v)),
          code = sfmt("supports versions %d..%d of '%s' (get_version)", lo, hi, change_id),
          message = sfmt("ctx:get_version('%s'): the history recorded version %s, outside the supported range %d..%d",
            change_id, tostring(v), lo, hi) }, 2)
      end
      return v
    end
    if behind(rs) then
      rs.d.versions[change_id] = { version = lo } -- this run follows the old path; nothing is recorded
      return lo
    end
    rs.d.versions[change_id] = { version = hi }
    rs.effects[#rs.effects + 1] = '{"change_id":' .. json.encode(change_id) .. ',"type":' .. json.encode(C.RecordVersion) .. ',"version":' ..
      sfmt("%d", hi) .. "}"
    return hi
  end

  function Ctx:patched(change_id)
    if type(change_id) ~= "string" or change_id == "" then
      error("ctx:patched: change_id must be a non-empty string", 2)
    end
    return self:get_version(change_id, 0, 1) == 1
  end
end

return D
