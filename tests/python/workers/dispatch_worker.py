"""Python test worker for eager dispatch, batch polls and batch results (tests/python/test_e2e_dispatch.py)."""

import os
import threading
import time

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
    if actx.attempt == 1:
        time.sleep(2.5)
    return {"attempt": actx.attempt}


# sticky replay state: several tasks per workflow, a signal at the end
@workflow.define("PyLoop")
def py_loop(ctx, n):
    total = 0
    for i in range(n):
        total += ctx.execute_activity("double", i)
    return {"total": total, "signal": ctx.wait_for_signal("go")}


workflow.connect(os.environ["ASSAY_ENGINE_URL"])
workflow.listen(queue=os.environ["ASSAY_QUEUE"], concurrency=int(os.environ.get("CONCURRENCY", "1")))
