"""approval-pipeline in Python: a deploy pipeline with a human approval gate, shown live in the
dashboard's Steps tab (the `pipeline_state` query) with Approve / Reject buttons (the `step_action`
signal). Same workflow, query, signal and activity names as worker.lua, so start.lua / decide.lua work
with either worker.

Run: assay run worker.py   (or: python worker.py; with `assay serve` running)
"""

import datetime
import os
import time

from assay import workflow

STEPS = ["Build", "Approval", "Deploy", "Verify"]


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@workflow.define("ApprovalPipeline")
def approval_pipeline(ctx, input):
    # Everything the Steps tab shows lives in this dict; the query returns it after every run.
    pipeline = {"status": "running", "current_step": 1, "log": [],
                "steps": [{"name": name, "status": "waiting"} for name in STEPS]}  # fmt: skip
    ctx.register_query("pipeline_state", lambda: pipeline)
    steps = pipeline["steps"]

    # Timestamps come from side effects: a replay must see the same values as the first run.
    def now():
        return ctx.side_effect("clock", utc_stamp)

    def note(step, msg):
        pipeline["log"].append({"time": now(), "msg": msg, "step": step})

    def begin(i):
        pipeline["current_step"] = i
        steps[i - 1]["status"] = "running"
        steps[i - 1]["started_at"] = now()
        ctx.upsert_search_attributes({"stage": STEPS[i - 1]})

    def finish(i, status):
        steps[i - 1]["status"] = status
        steps[i - 1]["completed_at"] = now()

    def skip_rest(start):
        for s in steps[start - 1 :]:
            s["status"] = "skipped"

    # 1. Build
    begin(1)
    artifact = ctx.execute_activity("build", {"ref": input["ref"]})
    finish(1, "done")
    note(1, "built " + artifact["image"])

    # 2. Approval: buttons in the dashboard send step_action signals
    begin(2)
    timeout = input.get("approval_timeout_secs") or 3600
    steps[1]["actions"] = ["approve", "reject"]
    steps[1]["expires_at"] = ctx.side_effect("deadline", lambda: time.time() + timeout)
    note(2, "waiting for approval of " + artifact["image"])
    decision = None
    while decision is None:
        got, action = ctx.signal_or_timeout("step_action", timeout)
        if not got:
            finish(2, "failed")
            skip_rest(3)
            pipeline["status"] = "failed"
            note(2, "approval timed out")
            raise RuntimeError(f"approval timed out after {timeout:g}s")
        if isinstance(action, dict) and action.get("step") == "Approval":
            decision = action
        else:
            note(2, "ignored a step_action that was not for the Approval step")
    steps[1].pop("actions", None)
    steps[1].pop("expires_at", None)
    who = decision.get("user") or "someone"
    if decision.get("action") != "approve":
        finish(2, "cancelled")
        skip_rest(3)
        pipeline["status"] = "cancelled"
        note(2, "rejected by " + who)
        ctx.cancel("rejected by " + who)
    finish(2, "done")
    note(2, "approved by " + who)
    ctx.upsert_search_attributes({"approver": who})

    # 3. Deploy, 4. Verify
    begin(3)
    release = ctx.execute_activity(
        "deploy", {"image": artifact["image"], "env": input.get("env") or "staging"}
    )
    finish(3, "done")
    note(3, f"deployed {release['version']} to {release['env']}")

    begin(4)
    health = ctx.execute_activity("verify", release, max_attempts=5, initial_interval_secs=0.5)
    finish(4, "done")
    note(4, f"healthy after {health['checks']} check(s)")

    pipeline["status"] = "done"
    return {"image": artifact["image"], "version": release["version"], "approved_by": who}


# Activities: stand-ins for a CI build, a deploy and a health check.
@workflow.activity("build")
def build(actx, input):
    ref = input.get("ref") or "main"
    return {"image": "registry.example/app:" + ref[:12]}


@workflow.activity("deploy")
def deploy(actx, input):
    actx.heartbeat({"phase": "rolling out"})
    return {"image": input["image"], "env": input["env"], "version": input["image"].split(":", 1)[1]}


@workflow.activity("verify")
def verify(actx, release):
    return {"checks": actx.attempt, "version": release["version"]}


if __name__ == "__main__":
    workflow.connect(os.environ.get("ASSAY_ENGINE_URL", "http://127.0.0.1:8080"))
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"))
