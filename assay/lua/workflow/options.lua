-- assay.workflow.options: ctx:execute_activity's options, native names and Temporal's (seed 004)
-- translated to them, checked with errors naming the field. Internal module (used by
-- assay.workflow.replay).
local native = require("assay._native")
local sfmt, concat = string.format, table.concat

local O = {}

local ACTIVITY_OPTS = { "max_attempts", "initial_interval_secs", "backoff_coefficient", "maximum_interval_secs",
  "start_to_close_secs", "heartbeat_timeout_secs", "schedule_to_close_secs", "non_retryable_errors" }

-- Activity options: the native names, plus Temporal's (seed 004) translated to them. Each entry:
-- native name, kind. "pos" = number > 0, "nonneg" = number >= 0, "coef" = number >= 1, "attempts" =
-- integer >= 0 (Temporal's maximum_attempts: 0 = unlimited), "strings" = list of strings.
local NATIVE_KIND = { max_attempts = "count", initial_interval_secs = "nonneg", backoff_coefficient = "coef",
  maximum_interval_secs = "nonneg", start_to_close_secs = "pos", heartbeat_timeout_secs = "pos",
  schedule_to_close_secs = "pos", non_retryable_errors = "strings" }
local TEMPORAL_TOP = { start_to_close_timeout = "start_to_close_secs",
  schedule_to_close_timeout = "schedule_to_close_secs", heartbeat_timeout = "heartbeat_timeout_secs" }
local TEMPORAL_RETRY = { initial_interval = "initial_interval_secs", backoff_coefficient = "backoff_coefficient",
  maximum_interval = "maximum_interval_secs", maximum_attempts = "max_attempts",
  non_retryable_errors = "non_retryable_errors", non_retryable_error_types = "non_retryable_errors" }
local UNLIMITED_ATTEMPTS = 10000 -- the engine's ceiling for max_attempts
local warned = {}

local function warn_unknown(key)
  if warned[key] then return end
  warned[key] = true
  native.log("warn", "assay.lua.worker", sfmt("ctx:execute_activity: unknown option '%s' ignored (known: " ..
    "task_queue, %s, start_to_close_timeout, schedule_to_close_timeout, heartbeat_timeout, retry_policy)",
    key, concat(ACTIVITY_OPTS, ", ")))
end

local function check_opt(field, kind, v, level)
  local bad
  if kind == "strings" then
    if type(v) ~= "table" then
      bad = "a list of strings"
    else
      for i, s in ipairs(v) do
        if type(s) ~= "string" then error(sfmt("ctx:execute_activity: %s[%d] must be a string, got %s", field, i,
          type(s)), level + 1) end
      end
    end
  elseif type(v) ~= "number" or v ~= v or v == math.huge then
    bad = "a number"
  elseif kind == "pos" and v <= 0 then
    bad = "a positive number of seconds"
  elseif kind == "nonneg" and v < 0 then
    bad = "a non-negative number of seconds"
  elseif kind == "coef" and v < 1 then
    bad = "a number >= 1"
  elseif (kind == "count" or kind == "attempts") and (v < 0 or v ~= math.floor(v)) then
    bad = "a non-negative integer"
  end
  if bad then
    error(sfmt("ctx:execute_activity: %s must be %s, got %s", field, bad,
      type(v) == "number" and tostring(v) or type(v)), level + 1)
  end
end

-- opts (native and/or Temporal spellings) -> table of native option values. Raises naming the field.
function O.activity_options(opts, level)
  local out = {}
  local function put(native_key, field, v)
    if out[native_key] ~= nil then
      error(sfmt("ctx:execute_activity: %s is given twice (as %s and another spelling)", native_key, field), level + 2)
    end
    out[native_key] = v
  end
  for k, v in pairs(opts) do
    local field = "opts." .. tostring(k)
    if k == "task_queue" then
      if type(v) ~= "string" or v == "" then
        error("ctx:execute_activity: opts.task_queue must be a non-empty string", level + 1)
      end
      out.task_queue = v
    elseif NATIVE_KIND[k] then
      put(k, field, v) -- native names go to the engine as given (it validates them and names the field)
    elseif TEMPORAL_TOP[k] then
      check_opt(field, "pos", v, level + 1)
      put(TEMPORAL_TOP[k], field, v)
    elseif k == "retry_policy" then
      if type(v) ~= "table" then error("ctx:execute_activity: opts.retry_policy must be a table, got " .. type(v), level + 1) end
      for rk, rv in pairs(v) do
        local rfield = "opts.retry_policy." .. tostring(rk)
        local nk = TEMPORAL_RETRY[rk]
        if not nk then
          warn_unknown("retry_policy." .. tostring(rk))
        else
          local kind = NATIVE_KIND[nk]
          if rk == "maximum_attempts" then kind = "attempts" end
          check_opt(rfield, kind, rv, level + 1)
          if rk == "maximum_attempts" and rv == 0 then rv = UNLIMITED_ATTEMPTS end
          put(nk, rfield, rv)
        end
      end
    else
      warn_unknown(tostring(k))
    end
  end
  return out
end

O.NAMES = ACTIVITY_OPTS

return O
