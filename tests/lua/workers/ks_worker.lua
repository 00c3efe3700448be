-- Kitchen-sink worker for the end-to-end tests: one workflow type per behaviour under test.
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL"))
local queue = env.get("ASSAY_QUEUE") or "ks"

---------------------------------------------------------------------------------------------------
-- every ctx method in one run
---------------------------------------------------------------------------------------------------
workflow.define("AllCtx", function(ctx, input)
  local phase = "start"
  ctx:register_query("phase", function() return phase end)
  ctx:register_query("pipeline_state", function()
    return { status = phase, current_step = 1,
      steps = { { name = "everything", status = phase == "done" and "done" or "running", actions = { "go" } } } }
  end)
  ctx:register_query("broken", function() error("queries may fail without harm") end)
  local token = ctx:side_effect("token", function() return crypto.uuid() end)
  local nothing = ctx:side_effect("nothing", function() return nil end)
  local echoed = ctx:execute_activity("echo", { x = input.x })
  phase = "parallel"
  local par = ctx:execute_parallel({ { "echo", "a" }, { name = "echo", input = "b" }, { "double", 21 } })
  ctx:upsert_search_attributes({ phase = "parallel-done", score = 7 })
  ctx:sleep(0.2)
  phase = "waiting"
  local sig = ctx:wait_for_signal("go")
  local child = ctx:start_child_workflow("Child", { workflow_id = ctx.workflow_id .. "-child", input = { v = 5 } })
  local act_info = ctx:execute_activity("info", nil, { max_attempts = 2 })
  ctx:upsert_search_attributes({ phase = "done" })
  phase = "done"
  return { token = token, nothing_is_nil = (nothing == nil), echoed = echoed, par = par, sig = sig,
    child = child, info = ctx:workflow_info(), act_info = act_info }
end)

workflow.define("Child", function(ctx, input)
  return { doubled = ctx:execute_activity("double", input.v), parent = ctx:workflow_info().parent_id }
end)

---------------------------------------------------------------------------------------------------
-- signals, timers, cancellation
---------------------------------------------------------------------------------------------------
workflow.define("SignalRace", function(ctx, input)
  local got, payload = ctx:signal_or_timeout("go", input.timeout)
  -- a second wait proves the cursor: an earlier signal is never delivered twice
  local second = ctx:wait_for_signal("go", { timeout = 0.2 })
  local got2 = second ~= nil
  return { payload = payload, got = got, second = second, got2 = got2 }
end)

workflow.define("LateWait", function(ctx)
  ctx:execute_activity("nap", 0.5)
  local got, payload = ctx:signal_or_timeout("go", 30)
  return { payload = payload, got = got }
end)

workflow.define("WaitForever", function(ctx)
  ctx:register_query("phase", function() return "waiting" end)
  ctx:wait_for_signal("never")
  return "unreachable"
end)

workflow.define("CancelActivity", function(ctx, input)
  return ctx:execute_activity("hb_until_cancel", input, { heartbeat_timeout_secs = 30 })
end)

workflow.define("SelfCancel", function(ctx)
  ctx:execute_activity("echo", "before")
  ctx:cancel("handler decided to stop")
  return "unreachable"
end)

workflow.define("Continue", function(ctx, input)
  if input.n < 2 then ctx:continue_as_new({ n = input.n + 1 }) end
  return { n = input.n, run = ctx:workflow_info().workflow_id }
end)

---------------------------------------------------------------------------------------------------
-- failures
---------------------------------------------------------------------------------------------------
workflow.define("ParallelFail", function(ctx)
  return ctx:execute_parallel({
    { "echo", "fine" },
    { "explode", "x", { max_attempts = 1 } },
    { "nap", 0.4 },
  })
end)

workflow.define("Parent", function(ctx, input)
  return ctx:start_child_workflow(input.child_type, { workflow_id = ctx.workflow_id .. "-kid", input = input })
end)

workflow.define("HandlerError", function(ctx)
  ctx:execute_activity("echo", 1)
  local t = nil
  return t.field -- a plain Lua runtime error
end)

workflow.define("BadReturn", function(ctx, input)
  if input.kind == "function" then return { f = print } end
  local t = {}
  t.self = t
  return t
end)

workflow.define("BadInput", function(ctx)
  local r = ctx:execute_activity("echo", { callback = function() end })
  return r
end)

workflow.define("Retry", function(ctx, input)
  return ctx:execute_activity("flaky", input, { max_attempts = 3, initial_interval_secs = 0.1 })
end)

workflow.define("NonRetryable", function(ctx)
  return ctx:execute_activity("refuse", nil, { max_attempts = 5, initial_interval_secs = 0.1 })
end)

workflow.define("BadOption", function(ctx)
  return ctx:execute_activity("echo", 1, { max_attempts = "three" })
end)

workflow.define("UnknownActivity", function(ctx)
  return ctx:execute_activity("no_such_activity", nil, { max_attempts = 1 })
end)

workflow.define("BadActivityResult", function(ctx)
  return ctx:execute_activity("returns_function", nil, { max_attempts = 1 })
end)

---------------------------------------------------------------------------------------------------
-- leases
---------------------------------------------------------------------------------------------------
workflow.define("LongHandler", function(ctx, input)
  -- the handler runs longer than the engine's dispatch lease (2 s in the tests): heartbeats extend it
  local v = ctx:side_effect("slow", function()
    sleep(input.secs)
    return "slow-value"
  end)
  ctx:execute_activity("echo", v)
  return v
end)

workflow.define("TwoNaps", function(ctx, input)
  return ctx:execute_parallel({ { "timed_nap", input.secs }, { "timed_nap", input.secs } })
end)

---------------------------------------------------------------------------------------------------
-- crash recovery: blocks once in an activity, once inside the handler (marker files say where)
---------------------------------------------------------------------------------------------------
workflow.define("Crashy", function(ctx, input)
  local token = ctx:side_effect("token", function() return crypto.uuid() end)
  local r = ctx:execute_activity("block_once", { marker = input.dir .. "/activity" },
    { heartbeat_timeout_secs = 1, max_attempts = 3, initial_interval_secs = 0.1 })
  local slow = ctx:side_effect("slow", function()
    local marker = input.dir .. "/handler"
    if not fs.exists(marker) then
      fs.write(marker, tostring(os.pid()))
      sleep(60)
    end
    return "after-crash"
  end)
  return { token = token, activity = r, slow = slow }
end)

---------------------------------------------------------------------------------------------------
-- activities
---------------------------------------------------------------------------------------------------
workflow.activity("timed_nap", function(actx, secs)
  local t0 = time()
  sleep(secs)
  return { start = t0, stop = time() }
end)
workflow.activity("block_once", function(actx, input)
  if not fs.exists(input.marker) then
    fs.write(input.marker, tostring(os.pid()))
    actx:heartbeat()
    sleep(60)
  end
  return { attempt = actx.attempt }
end)
workflow.activity("echo", function(actx, input) return input end)
workflow.activity("double", function(actx, n) return n * 2 end)
workflow.activity("nap", function(actx, secs)
  sleep(secs)
  return "rested"
end)
workflow.activity("explode", function() error("explode went bang") end)
workflow.activity("info", function(actx)
  local i = actx:info()
  i.cancelled = actx:heartbeat({ progress = 0.5 })
  return i
end)
workflow.activity("flaky", function(actx, input)
  if actx.attempt < 2 then error("transient failure on attempt " .. actx.attempt) end
  return { attempt = actx.attempt }
end)
workflow.activity("refuse", function()
  error({ message = "permanently refused", non_retryable = true })
end)
workflow.activity("returns_function", function() return { fn = print } end)
workflow.activity("hb_until_cancel", function(actx, input)
  fs.write(input.marker, "running")
  for _ = 1, 300 do
    if actx:heartbeat({ alive = true }) then
      fs.write(input.marker, "cancelled")
      return "stopped"
    end
    sleep(0.05)
  end
  return "never cancelled"
end)

workflow.listen({ queue = queue })
