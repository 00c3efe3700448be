"""Kitchen-sink Python test worker (tests/python/test_e2e_*.py). Queue from ASSAY_QUEUE."""

import os
import time
from pathlib import Path

from assay import workflow


def append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


# -- crash recovery: counts side-effect and activity executions in files; blocks once in an activity and
#    once inside the handler (marker files say where)
@workflow.define("PyCrashy")
def crashy(ctx, input):
    d = input["dir"]
    token = ctx.side_effect("token", lambda: append(d + "/effects", "run") or os.urandom(4).hex())
    counted = ctx.execute_activity("count_me", {"dir": d})
    blocked = ctx.execute_activity("block_once", {"marker": d + "/activity"}, start_to_close_secs=60,
                                   heartbeat_timeout_secs=30)  # fmt: skip
    marker = Path(d + "/handler")
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(3600)  # killed here, holding the workflow-task lease
    return {"token": token, "counted": counted, "activity": blocked}


@workflow.activity("count_me")
def count_me(actx, input):
    append(input["dir"] + "/activities", "run")
    return "counted"


@workflow.activity("block_once")
def block_once(actx, input):
    m = Path(input["marker"])
    if not m.exists():
        m.write_text(str(os.getpid()))
        time.sleep(3600)  # killed here
    return {"attempt": actx.attempt}


# -- interop with Lua: PyParent starts a Lua child on another queue; LuaParent starts PyKid here
@workflow.define("PyParent")
def py_parent(ctx, input):
    kid = ctx.start_child_workflow("LuaKid", {"n": input["n"]}, workflow_id=ctx.workflow_id + "-kid",
                                   task_queue=input["lua_queue"])  # fmt: skip
    return {"parent": "python", "kid": kid}


@workflow.define("PyKid")
def py_kid(ctx, input):
    doubled = ctx.execute_activity("py_double", input["n"])
    return {"from": "python", "n": doubled, "queue": ctx.info.queue}


@workflow.activity("py_double")
def py_double(actx, n):
    return n * 2


# -- versions of the same workflow: SHIFT_VERSION=2 renames the first step (nondeterministic)
V = os.environ.get("SHIFT_VERSION", "1")


@workflow.define("Shift")
def shift(ctx, input):
    first = ctx.execute_activity("step_one" if V == "1" else "step_renamed")
    nxt = ctx.wait_for_signal("next")
    second = ctx.execute_activity("step_two", nxt)
    return {"first": first, "second": second}


@workflow.activity("step_one")
def step_one(actx, input):
    return "one"


@workflow.activity("step_renamed")
def step_renamed(actx, input):
    return "renamed"


@workflow.activity("step_two")
def step_two(actx, input):
    return {"two": input}


# -- versioning: VERSIONED=1 is the old code, VERSIONED=2 the new one (guarded with get_version)
VERSIONED = os.environ.get("VERSIONED", "1")


@workflow.define("Versioned")
def versioned(ctx, input):
    v = ctx.get_version("charge-v2", 1, 2) if VERSIONED == "2" else 1
    step = ctx.execute_activity("charge_v2" if v == 2 else "charge", input)
    ctx.wait_for_signal("go")
    return {"step": step, "v": v}


@workflow.activity("charge")
def charge(actx, input):
    return "charged-v1"


@workflow.activity("charge_v2")
def charge_v2(actx, input):
    return "charged-v2"


# -- a handler that takes longer than the engine's workflow-task lease (ASSAY_WF_DISPATCH_TIMEOUT_SECS=2)
@workflow.define("SlowHandler")
def slow_handler(ctx, input):
    took = ctx.side_effect("slow", lambda: time.sleep(input["secs"]) or input["secs"])
    return {"took": took, "pid": ctx.side_effect("pid", os.getpid)}


# -- graceful stop and concurrency
@workflow.define("Nap")
def nap(ctx, input):
    return ctx.execute_activity("nap", input)


@workflow.activity("nap")
def nap_activity(actx, input):
    Path(input["marker"]).write_text("napping")
    time.sleep(input["secs"])
    return "rested"


@workflow.define("Gather")
def gather(ctx, input):
    return ctx.execute_parallel(
        [("meet", {"dir": input["dir"], "i": i, "n": input["n"]}) for i in range(input["n"])]
    )


@workflow.activity("meet")
def meet(actx, input):
    """Succeeds only when all n activities run at the same time (they wait for each other)."""
    Path(input["dir"], str(input["i"])).write_text("here")
    deadline = time.monotonic() + 15
    while len(list(Path(input["dir"]).iterdir())) < input["n"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the other activities never ran concurrently")
        time.sleep(0.02)
    return input["i"]


if __name__ == "__main__":
    workflow.connect(os.environ.get("ASSAY_ENGINE_URL"))
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"),
                    concurrency=int(os.environ.get("PY_CONCURRENCY", "1")))  # fmt: skip
