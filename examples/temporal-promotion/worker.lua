-- A release-promotion worker written against the Temporal-era `temporal` global (docs/temporal.md).
-- Moving it from a Temporal cluster to assay changed one line: the `url` below.
--
--   assay serve                       # an engine on 127.0.0.1:8080
--   assay run worker.lua              # serves until Ctrl-C / SIGTERM
--   assay run start.lua v1.4.2 prod   # starts a promotion, approves it, prints the result
local ENGINE = env.get("ASSAY_ENGINE_URL") or "127.0.0.1:8080" -- was "temporal-frontend:7233"

local function post_json(url, body, headers)
  local resp = http.post(url, body, { headers = headers })
  local ok, decoded = pcall(json.parse, resp.body)
  return resp.status, ok and decoded or nil
end

temporal.worker({
  url = ENGINE,
  namespace = env.get("ASSAY_NAMESPACE"), -- nil: the engine's default namespace
  task_queue = env.get("PROMOTION_QUEUE") or "promotions",
  activities = {
    -- Write the new version into the GitOps repository; the API answers 201 with the commit.
    commit_overlay = function(input)
      local status, commit = post_json(input.gitops_url .. "/commits", {
        branch = "main",
        message = string.format("promote %s to %s", input.version, input.target),
        file = string.format("overlays/%s/version.txt", input.target),
        content = input.version,
      }, { ["PRIVATE-TOKEN"] = input.token or "" })
      if status == 403 then error("PERMISSION_DENIED: the GitOps token may not push to main") end
      if status ~= 201 then error("GitOps commit failed: HTTP " .. tostring(status)) end
      return { short_id = commit.short_id, target = input.target }
    end,
    -- Tell the channel. A chat outage must not undo a promotion: report and move on.
    announce = function(input)
      local status = post_json(input.webhook, { text = input.text })
      return { delivered = status == 200 }
    end,
  },
  workflows = {
    PromotionWorkflow = function(ctx, input)
      local info = ctx:workflow_info()
      -- Stage 1: a human approves (or nobody does within the window)
      local approval = ctx:wait_signal("approve", { timeout = input.approval_window or 3600 })
      if not approval then
        ctx:execute_activity("announce", { webhook = input.webhook,
          text = string.format("%s: promotion of %s expired unapproved", info.workflow_id, input.version) })
        return { status = "expired", version = input.version }
      end
      -- Stage 2: the commit, retried on transient errors but never on a permission problem
      local commit = ctx:execute_activity("commit_overlay", {
        gitops_url = input.gitops_url, token = input.token, version = input.version, target = input.target,
      }, {
        start_to_close_timeout = 30,
        schedule_to_close_timeout = 300,
        retry_policy = { initial_interval = 0.2, backoff_coefficient = 2, maximum_interval = 5,
          maximum_attempts = 4, non_retryable_errors = { "PERMISSION_DENIED" } },
      })
      -- Stage 3: announce
      local note = ctx:execute_activity("announce", { webhook = input.webhook,
        text = string.format("%s promoted to %s by %s (%s)", input.version, input.target, approval.user,
          commit.short_id) }, { start_to_close_timeout = 10, retry_policy = { maximum_attempts = 2 } })
      return { status = "promoted", version = input.version, commit = commit.short_id,
        approved_by = approval.user, announced = note.delivered, queue = info.task_queue }
    end,
  },
})
-- The script ends here; `assay run` keeps the worker serving until it is stopped.
