"""Python test worker for eager dispatch, batch polls and batch results (tests/python/test_e2e_dispatch.py)."""

import json
import os
import threading
import time
import urllib.request

from assay import workflow

MEET = threading.Barrier(int(os.environ.get("MEET_PARTIES", "4")), timeout=10)


@workflow.define("PyOne")
def py_one(ctx, input):
    return ctx.execute_activity("double", input)


@workflow.activity("double")
def double(actx, n):
    return n * 2


# four activities that finish together: their results reach the worker's reporter at the same moment
@workflow.define("PyMeet")
def py_meet(ctx, input):
    return ctx.execute_parallel([("meet", {"i": i}) for i in range(MEET.parties)])


@workflow.activity("meet")
def meet(actx, input):
    try:
        MEET.wait()
    except threading.BrokenBarrierError:
        MEET.reset()
    return input["i"]


# the first attempt outlives its start_to_close timeout: its late result must be refused
@workflow.define("PyLate")
def py_late(ctx, input):
    return ctx.execute_activity("late_once", input, start_to_close_secs=1, max_attempts=3,
                                initial_interval_secs=0.1)  # fmt: skip


@workflow.activity("late_once")
def late_once(actx, input):
    if actx.attempt == 1:  # outlive the timeout: return only once attempt 2 has completed the workflow
        _await_completed(actx.workflow_id)
    return {"attempt": actx.attempt}


def _await_completed(wf_id: str, deadline_secs: float = 60.0) -> None:
    url = f"{os.environ['ASSAY_ENGINE_URL']}/api/v1/workflows/{wf_id}"
    deadline = time.monotonic() + deadline_secs
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=10) as r:
            if json.loads(r.read()).get("status") == "COMPLETED":
                return
        time.sleep(0.05)
    raise RuntimeError(f"{wf_id} did not complete within {deadline_secs} s")


# sticky replay state: several tasks per workflow, a signal at the end
@workflow.define("PyLoop")
def py_loop(ctx, n):
    total = 0
    for i in range(n):
        total += ctx.execute_activity("double", i)
    return {"total": total, "signal": ctx.wait_for_signal("go")}


workflow.connect(os.environ["ASSAY_ENGINE_URL"])
workflow.listen(queue=os.environ["ASSAY_QUEUE"], concurrency=int(os.environ.get("CONCURRENCY", "1")))
