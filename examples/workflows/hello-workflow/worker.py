"""hello-workflow in Python: the smallest useful worker. One workflow, one activity.

Run: assay run worker.py   (or: python worker.py; with `assay serve` running; ASSAY_ENGINE_URL overrides
the address). Starts the same way as the Lua worker: assay run start.lua [NAME]
"""

import logging
import os

from assay import workflow

log = logging.getLogger("assay.examples.hello")


# The workflow orchestrates; it must be deterministic, so the actual work happens in activities.
@workflow.define("HelloWorkflow")
def hello(ctx, input):
    name = (input or {}).get("name") or "world"
    greeting = ctx.execute_activity("compose_greeting", {"name": name})
    return {"greeting": greeting, "workflow_id": ctx.workflow_id}


# Activities do the real work (HTTP calls, files, databases...). They may be retried.
@workflow.activity("compose_greeting")
def compose_greeting(actx, input):
    log.info("composing a greeting for %s (attempt %d)", input["name"], actx.attempt)
    return "Hello, " + input["name"] + "!"


if __name__ == "__main__":
    workflow.connect(os.environ.get("ASSAY_ENGINE_URL", "http://127.0.0.1:8080"))
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"))
