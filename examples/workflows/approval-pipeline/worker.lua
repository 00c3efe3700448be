-- approval-pipeline: a deploy pipeline with a human approval gate, shown live in the dashboard's
-- Steps tab (the `pipeline_state` query) with Approve / Reject buttons (the `step_action` signal).
-- Run: assay run worker.lua   (with `assay serve` running)
local workflow = require("assay.workflow")
workflow.connect(env.get("ASSAY_ENGINE_URL") or "http://127.0.0.1:8080")

local STEPS = { "Build", "Approval", "Deploy", "Verify" }

workflow.define("ApprovalPipeline", function(ctx, input)
  -- Everything the Steps tab shows lives in this table; the query returns it after every run.
  local pipeline = { status = "running", current_step = 1, steps = {}, log = {} }
  for i, name in ipairs(STEPS) do pipeline.steps[i] = { name = name, status = "waiting" } end
  ctx:register_query("pipeline_state", function() return pipeline end)

  -- Timestamps come from side effects: a replay must see the same values as the first run.
  local function now() return ctx:side_effect("clock", function() return os.date("!%Y-%m-%dT%H:%M:%SZ") end) end
  local function note(step, msg) pipeline.log[#pipeline.log + 1] = { time = now(), msg = msg, step = step } end
  local function begin(i)
    pipeline.current_step = i
    pipeline.steps[i].status = "running"
    pipeline.steps[i].started_at = now()
    ctx:upsert_search_attributes({ stage = STEPS[i] })
  end
  local function finish(i, status)
    pipeline.steps[i].status = status
    pipeline.steps[i].completed_at = now()
  end
  local function skip_rest(from)
    for j = from, #STEPS do pipeline.steps[j].status = "skipped" end
  end

  -- 1. Build
  begin(1)
  local artifact = ctx:execute_activity("build", { ref = input.ref })
  finish(1, "done")
  note(1, "built " .. artifact.image)

  -- 2. Approval: buttons in the dashboard send step_action signals
  begin(2)
  local timeout = input.approval_timeout_secs or 3600
  pipeline.steps[2].actions = { "approve", "reject" }
  pipeline.steps[2].expires_at = ctx:side_effect("deadline", function() return time() + timeout end)
  note(2, "waiting for approval of " .. artifact.image)
  local decision
  while decision == nil do
    local got, action = ctx:signal_or_timeout("step_action", timeout)
    if not got then
      finish(2, "failed")
      skip_rest(3)
      pipeline.status = "failed"
      note(2, "approval timed out")
      error("approval timed out after " .. timeout .. "s")
    elseif type(action) == "table" and action.step == "Approval" then
      decision = action
    else
      note(2, "ignored a step_action that was not for the Approval step")
    end
  end
  pipeline.steps[2].actions = nil
  pipeline.steps[2].expires_at = nil
  local who = decision.user or "someone"
  if decision.action ~= "approve" then
    finish(2, "cancelled")
    skip_rest(3)
    pipeline.status = "cancelled"
    note(2, "rejected by " .. who)
    ctx:cancel("rejected by " .. who)
  end
  finish(2, "done")
  note(2, "approved by " .. who)
  ctx:upsert_search_attributes({ approver = who })

  -- 3. Deploy, 4. Verify
  begin(3)
  local release = ctx:execute_activity("deploy", { image = artifact.image, env = input.env or "staging" })
  finish(3, "done")
  note(3, "deployed " .. release.version .. " to " .. release.env)

  begin(4)
  local health = ctx:execute_activity("verify", release, { max_attempts = 5, initial_interval_secs = 0.5 })
  finish(4, "done")
  note(4, "healthy after " .. health.checks .. " check(s)")

  pipeline.status = "done"
  return { image = artifact.image, version = release.version, approved_by = who }
end)

-- Activities: stand-ins for a CI build, a deploy and a health check.
workflow.activity("build", function(actx, input)
  local ref = input.ref or "main"
  return { image = "registry.example/app:" .. ref:sub(1, 12) }
end)

workflow.activity("deploy", function(actx, input)
  actx:heartbeat({ phase = "rolling out" })
  return { image = input.image, env = input.env, version = input.image:match(":(.*)$") }
end)

workflow.activity("verify", function(actx, release)
  return { checks = actx.attempt, version = release.version }
end)

workflow.listen({ queue = env.get("ASSAY_QUEUE") or "default" })
