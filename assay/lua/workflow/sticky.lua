-- assay.workflow.sticky: a sticky worker's cache of suspended workflow run states, and the full history
-- of a workflow task when the task does not carry it (a partial or paged history).
--
-- A worker that registers with `sticky = true` gets, for a workflow whose last task it ran, only the
-- events after that task (`history_after` = the last seq it saw). It keeps each workflow's suspended
-- run state (assay.workflow.replay R.start / R.resume), keyed by workflow id, with the last seq the
-- state has seen. A task is applied to the cached state only when its history_after equals that seq;
-- otherwise (no state, evicted, a mismatch) the worker fetches the whole history (GET
-- /workflows/{id}/events pages) and replays from the start. At most `cap` states are kept; the least
-- recently used is dropped first. Internal module.
local P = require("assay.protocol")
local client = require("assay.workflow.client")
local sfmt = string.format

local S = {}

-- Protocol field names (assay/protocol.py)
local F = { sticky = P.STICKY, history_after = P.HISTORY_AFTER, history_next_after = P.HISTORY_NEXT_AFTER,
  history_last_seq = P.HISTORY_LAST_SEQ }
S.F = F
S.PAGE = P.HISTORY_PAGE_MAX -- events per page of GET /workflows/{id}/events (the engine's cap)

---------------------------------------------------------------------------------------------------
-- LRU cache: workflow id -> { rs, last_seq }; a doubly linked list, most recent at the head
---------------------------------------------------------------------------------------------------
local Cache = {}
Cache.__index = Cache

function S.cache(cap)
  local head = {}
  head.prev, head.next = head, head
  return setmetatable({ cap = math.max(0, math.floor(tonumber(cap) or 0)), map = {}, n = 0, head = head,
    evicted = 0 }, Cache)
end

local function unlink(e)
  e.prev.next, e.next.prev = e.next, e.prev
end

local function push_front(c, e)
  local h = c.head
  e.prev, e.next = h, h.next
  h.next.prev = e
  h.next = e
end

-- The cached entry of workflow `id` (marked most recently used), or nil.
function Cache:get(id)
  local e = self.map[id]
  if e then
    unlink(e)
    push_front(self, e)
  end
  return e
end

function Cache:drop(id)
  local e = self.map[id]
  if e then
    unlink(e)
    self.map[id] = nil
    self.n = self.n - 1
  end
end

-- Keep run state `rs` of workflow `id`, which has seen the events up to `last_seq`.
function Cache:put(id, rs, last_seq)
  if self.cap <= 0 then return end
  self:drop(id)
  local e = { id = id, rs = rs, last_seq = last_seq }
  self.map[id] = e
  self.n = self.n + 1
  push_front(self, e)
  while self.n > self.cap do
    local lru = self.head.prev
    self:drop(lru.id)
    self.evicted = self.evicted + 1
  end
end

function Cache:size() return self.n end

---------------------------------------------------------------------------------------------------
-- the task's history
---------------------------------------------------------------------------------------------------
local function int(v) return math.tointeger(tonumber(v)) end

-- The seq the task's history covers up to (history_last_seq; else the last event's; else its length).
function S.last_seq(task)
  local last = int(task[F.history_last_seq])
  if last then return last end
  local h = task.history or {}
  local ev = h[#h]
  return (type(ev) == "table" and int(ev.seq)) or #h
end

-- True when the task carries only part of the history (after a seq, or a first page).
function S.partial(task)
  return task[F.history_after] ~= nil or task[F.history_next_after] ~= nil
end

-- The whole history of `task` (events with seq <= its history_last_seq, ascending): the task's own when
-- complete, else fetched. `get(path)` answers status, decoded JSON (a list, or an object with `events`),
-- raw body. Returns the list, or nil and an error message.
function S.full_history(task, get)
  if not S.partial(task) then return task.history or {} end
  local out, after = {}, 0
  if task[F.history_after] == nil then -- a paged first page: keep it, fetch the rest
    for i, ev in ipairs(task.history or {}) do out[i] = ev end
    after = int(task[F.history_next_after]) or 0
  end
  local last = int(task[F.history_last_seq])
  local path = "/workflows/" .. client.pct(task.workflow_id) .. "/events?after=%d&after_seq=%d&limit=%d"
  while last == nil or after < last do
    local status, value, raw = get(sfmt(path, after, after, S.PAGE))
    if status ~= 200 or type(value) ~= "table" then
      local why = type(value) == "table" and value.error or raw
      return nil, sfmt("fetching the history of workflow %s answered %s: %s", tostring(task.workflow_id),
        status == nil and "nothing" or ("HTTP " .. tostring(status)), tostring(why))
    end
    local list = type(value.events) == "table" and value.events or value
    if #list == 0 then break end
    local moved = false
    for _, ev in ipairs(list) do
      local seq = int(ev.seq) or 0
      if last ~= nil and seq > last then
        after = last
        break
      end
      if seq > after then
        out[#out + 1] = ev
        after, moved = seq, true
      end
    end
    if not moved then break end
  end
  if last ~= nil and after < last then
    return nil, sfmt("the history of workflow %s ended at event %d before event %d", tostring(task.workflow_id),
      after, last)
  end
  return out
end

return S
