"""The pure Python replay (assay.workflow.replay) on synthetic histories: commands, seqs, errors."""

from __future__ import annotations

import pytest

from assay.workflow import ActivityError, Cancelled, ChildWorkflowError, replay

T0 = 1_750_000_000.0


def hist(*events: tuple[str, object]) -> list[dict]:
    """Events with gap-free seqs and timestamps one second apart (WorkflowStarted first)."""
    evs = [("WorkflowStarted", {"in": 1}), *events]
    return [
        {"seq": i + 1, "event_type": t, "payload": p, "timestamp": T0 + i} for i, (t, p) in enumerate(evs)
    ]


def task(history: list[dict], input=None, **kw) -> dict:
    return {"workflow_id": "wf-1", "workflow_type": "T", "namespace": "main", "task_queue": "q1",
            "run_id": "run-1", "input": input, "attempt": 1, "history": history, **kw}  # fmt: skip


def run(fn, *events, input=None):
    return replay.run(fn, task(hist(*events), input))


def sched(seq, name):
    return ("ActivityScheduled", {"activity_seq": seq, "name": name, "activity_id": seq})


def done(seq, name, result):
    return ("ActivityCompleted", {"activity_seq": seq, "name": name, "result": result})


def test_activity_schedule_then_result_with_lua_option_names():
    def wf(ctx, input):
        return ctx.execute_activity("a", {"x": input}, task_queue="q2", max_attempts=3, start_to_close_secs=5,
                                    non_retryable_errors=("Bad",))  # fmt: skip

    r = run(wf, input=7)
    assert r.summary == "suspended" and r.task_error is None
    assert r.commands == [
        {
            "type": "ScheduleActivity",
            "seq": 1,
            "name": "a",
            "input": {"x": 7},
            "task_queue": "q2",
            "max_attempts": 3,
            "start_to_close_secs": 5,
            "non_retryable_errors": ["Bad"],
        }  # fmt: skip
    ]
    r = run(wf, sched(1, "a"), done(1, "a", "ok"), input=7)
    assert r.commands == [{"type": "CompleteWorkflow", "result": "ok"}]


def test_unknown_activity_option_fails_the_workflow_naming_it():
    r = run(lambda ctx, i: ctx.execute_activity("a", None, max_attempt=3))
    assert r.commands[0]["type"] == "FailWorkflow"
    assert "unknown option 'max_attempt'" in r.commands[0]["error"]


def test_failed_activity_raises_activity_error_the_handler_can_catch():
    def wf(ctx, input):
        try:
            ctx.execute_activity("a")
        except ActivityError as e:
            return {"caught": str(e), "name": e.name}

    r = run(wf, sched(1, "a"), ("ActivityFailed", {"activity_seq": 1, "name": "a", "error": "boom"}))
    assert r.commands == [
        {"type": "CompleteWorkflow", "result": {"caught": "activity 'a' failed: boom", "name": "a"}}
    ]
    r = run(lambda ctx, i: ctx.execute_activity("a"), sched(1, "a"),
            ("ActivityFailed", {"activity_seq": 1, "name": "a", "error": "boom"}))  # fmt: skip
    assert r.commands == [{"type": "FailWorkflow", "error": "activity 'a' failed: boom"}]


def test_parallel_schedules_the_missing_ones_and_keeps_order():
    def wf(ctx, input):
        return ctx.execute_parallel([("a", 1), ("b", 2, {"max_attempts": 1}), {"name": "c", "input": 3}])

    assert [(c["seq"], c["name"]) for c in run(wf).commands] == [(1, "a"), (2, "b"), (3, "c")]
    r = run(wf, sched(1, "a"), sched(2, "b"), sched(3, "c"), done(2, "b", 20))
    assert [(c["seq"], c["name"]) for c in r.commands] == [(1, "a"), (3, "c")]
    r = run(
        wf, sched(1, "a"), sched(2, "b"), sched(3, "c"), done(2, "b", 20), done(1, "a", 10), done(3, "c", 30)
    )
    assert r.commands == [{"type": "CompleteWorkflow", "result": [10, 20, 30]}]


def test_timers_signals_and_the_race_between_them():
    def wf(ctx, input):
        ctx.sleep(5)
        return ctx.wait_for_signal("go", timeout=10)

    assert run(wf).commands == [{"type": "ScheduleTimer", "seq": 1, "duration_secs": 5.0}]
    fired1 = ("TimerFired", {"timer_seq": 1})
    assert run(wf, fired1).commands == [
        {"type": "ScheduleTimer", "seq": 2, "duration_secs": 10.0},
        {"type": "WaitForSignal", "name": "go", "timer_seq": 2},
    ]
    sig = ("SignalReceived", {"signal": "go", "payload": {"v": 1}})
    fired2 = ("TimerFired", {"timer_seq": 2})
    assert run(wf, fired1, sig, fired2).commands == [{"type": "CompleteWorkflow", "result": {"v": 1}}]
    assert run(wf, fired1, fired2, sig).commands == [{"type": "CompleteWorkflow", "result": None}]
    # without a timeout: WaitForSignal only, and signals are consumed in order
    two = replay.run(lambda ctx, i: [ctx.wait_for_signal("s"), ctx.wait_for_signal("s")],
                     task(hist(("SignalReceived", {"signal": "s", "payload": 1}))))  # fmt: skip
    assert two.commands == [{"type": "WaitForSignal", "name": "s"}]


def test_side_effects_run_once_and_ride_with_the_batch():
    calls = []

    def wf(ctx, input):
        v = ctx.side_effect("id", lambda: calls.append(1) or "tok")
        ctx.upsert_search_attributes({"b": 2, "a": v})
        return ctx.execute_activity("x", v)

    r = run(wf)
    assert r.commands == [
        {"type": "RecordSideEffect", "seq": 1, "name": "id", "value": "tok"},
        {"type": "UpsertSearchAttributes", "patch": {"a": "tok", "b": 2}},
        {"type": "ScheduleActivity", "seq": 1, "name": "x", "input": "tok"},
    ]
    calls.clear()
    r = run(
        wf, ("SideEffectRecorded", {"side_effect_seq": 1, "name": "id", "value": "recorded"}), sched(1, "x")
    )
    assert calls == [] and r.commands == [
        {"type": "UpsertSearchAttributes", "patch": {"a": "recorded", "b": 2}},
        {"type": "ScheduleActivity", "seq": 1, "name": "x", "input": "recorded"},
    ]


def test_children_results_and_failures():
    def wf(ctx, input):
        try:
            return ctx.start_child_workflow("Kid", {"n": 1}, workflow_id="kid-1", task_queue="kq")
        except ChildWorkflowError as e:
            return {"err": e.error, "id": e.workflow_id}

    assert run(wf).commands == [{"type": "StartChildWorkflow", "workflow_id": "kid-1", "workflow_type": "Kid",
                                 "input": {"n": 1}, "task_queue": "kq"}]  # fmt: skip
    started = ("ChildWorkflowStarted", {"child_workflow_id": "kid-1", "workflow_type": "Kid"})
    ok = ("ChildWorkflowCompleted", {"child_workflow_id": "kid-1", "result": 5})
    assert run(wf, started, ok).commands == [{"type": "CompleteWorkflow", "result": 5}]
    bad = ("ChildWorkflowFailed", {"child_workflow_id": "kid-1", "error": "no", "reason": "failed"})
    assert run(wf, started, bad).commands == [
        {"type": "CompleteWorkflow", "result": {"err": "no", "id": "kid-1"}}
    ]


def test_queries_snapshot_first_and_continue_as_new():
    def wf(ctx, input):
        state = {"n": input}
        ctx.register_query("b", lambda: state)
        ctx.register_query("a", lambda: None)  # None: left out
        ctx.register_query("c", lambda: 1 / 0)  # failing: left out
        state["n"] += 1
        ctx.continue_as_new(state["n"])

    assert run(wf, input=1).commands == [
        {"type": "RecordSnapshot", "state": {"b": {"n": 2}}},
        {"type": "ContinueAsNew", "input": 2},
    ]


def test_nondeterminism_fails_the_task_not_the_workflow():
    def wf(ctx, input):
        try:
            return ctx.execute_activity("renamed")
        except Exception:  # noqa: BLE001 - a handler that swallows everything cannot hide it
            return "swallowed"

    r = run(wf, sched(1, "original"))
    assert r.commands == [] and r.summary == "task failed"
    assert (
        r.task_error
        == "nondeterministic workflow: activity #1 was 'original' in the history, the code now runs 'renamed'"
    )
    r = run(lambda ctx, i: ctx.start_child_workflow("Other", workflow_id="kid-1"),
            ("ChildWorkflowStarted", {"child_workflow_id": "kid-1", "workflow_type": "Kid"}))  # fmt: skip
    assert "child workflow 'kid-1' was of type 'Kid'" in r.task_error and "'Other'" in r.task_error


def test_cancellation_raises_and_ends_cancelled_even_when_caught():
    cleanup = []

    def wf(ctx, input):
        try:
            ctx.execute_activity("a")
            ctx.sleep(10)
        except Cancelled as e:
            cleanup.append(e.reason)
            return "cleaned"

    r = run(wf, sched(1, "a"), done(1, "a", 1), ("WorkflowCancelRequested", {"reason": "stop"}))
    assert r.commands == [{"type": "CancelWorkflow"}] and cleanup == ["stop"]
    # an outcome recorded after the request is not delivered
    r = run(lambda ctx, i: ctx.execute_activity("a"), sched(1, "a"),
            ("WorkflowCancelRequested", None), done(1, "a", 1))  # fmt: skip
    assert r.commands == [{"type": "CancelWorkflow"}]
    assert run(lambda ctx, i: ctx.cancel("no")).commands == [{"type": "CancelWorkflow"}]


def test_handler_errors_unknown_types_and_unencodable_values():
    r = run(lambda ctx, i: {}["missing"])
    assert r.commands == [{"type": "FailWorkflow", "error": "KeyError: 'missing'"}]
    assert replay.run(None, task(hist())).commands == [
        {"type": "FailWorkflow", "error": "no workflow handler registered for type: T"}
    ]
    r = run(lambda ctx, i: {1, 2})
    assert "returned a value that cannot be encoded as JSON" in r.commands[0]["error"]
    r = run(lambda ctx, i: ctx.execute_activity("a", object()))
    assert "input of activity 'a' cannot be encoded as JSON" in r.commands[0]["error"]
    r = run(lambda ctx, i: ctx.sleep(-1))
    assert "ctx.sleep: seconds must be a non-negative number" in r.commands[0]["error"]


def test_suspension_cannot_be_swallowed_by_a_broad_except():
    def wf(ctx, input):
        try:
            ctx.execute_activity("a")
        except BaseException:  # noqa: BLE001 - deliberately hostile
            pass
        return "too early"

    assert run(wf).commands == [{"type": "ScheduleActivity", "seq": 1, "name": "a", "input": None}]


def test_now_and_random_are_deterministic_on_replay():
    seen = []

    def wf(ctx, input):
        seen.append(("start", ctx.now().timestamp(), ctx.random()))
        ctx.execute_activity("a")
        seen.append(("after", ctx.now().timestamp(), ctx.random()))
        return None

    run(wf)
    run(wf, sched(1, "a"), done(1, "a", 1))
    run(wf, sched(1, "a"), done(1, "a", 1))
    assert seen[0] == seen[1] == seen[3]  # the first step is identical on every replay
    assert seen[2] == seen[4] and seen[2][1] == T0 + 2  # the time of the ActivityCompleted event
    assert 0 <= seen[0][2] < 1 and seen[0][2] != seen[2][2]


def test_info():
    out = {}

    def wf(ctx, input):
        out["info"] = ctx.info

    replay.run(wf, task(hist(), parent_id="p-1", attempt=3, search_attributes={"k": "v"}))
    i = out["info"]
    assert (i.workflow_id, i.workflow_type, i.namespace, i.queue, i.attempt, i.start_time, i.parent_id) == (
        "wf-1", "T", "main", "q1", 3, T0, "p-1")  # fmt: skip
    assert i.search_attributes == {"k": "v"} and i.history_length == 1


# --- versioning (board spec: RecordVersion / VersionMarkerRecorded, no seq consumed) ---------------
def versioned(ctx, input):
    v = ctx.get_version("new-step", 1, 2)
    first = ctx.execute_activity("new" if v == 2 else "old")
    return {"v": v, "patched": ctx.patched("other"), "r": first}


def test_get_version_at_the_frontier_records_max_without_consuming_a_seq():
    r = run(versioned)
    assert r.commands == [
        {"type": "RecordVersion", "change_id": "new-step", "version": 2},
        {"type": "ScheduleActivity", "seq": 1, "name": "new", "input": None},
    ]


def test_get_version_reads_the_marker_back():
    marker = ("VersionMarkerRecorded", {"change_id": "new-step", "version": 2})
    other = ("VersionMarkerRecorded", {"change_id": "other", "version": 1})
    r = run(versioned, marker, sched(1, "new"), done(1, "new", "x"), other)
    assert r.commands == [{"type": "CompleteWorkflow", "result": {"v": 2, "patched": True, "r": "x"}}]
    marker1 = ("VersionMarkerRecorded", {"change_id": "new-step", "version": 1})
    r = run(versioned, marker1, sched(1, "old"), done(1, "old", "y"))
    # at the frontier: `other` is new, recorded with RecordVersion
    assert r.commands == [
        {"type": "RecordVersion", "change_id": "other", "version": 1},
        {"type": "CompleteWorkflow", "result": {"v": 1, "patched": True, "r": "y"}},
    ]


def test_old_history_without_marker_follows_min_supported():
    # a run started by the old code (no marker; it already scheduled 'old' at seq 1)
    r = run(versioned, sched(1, "old"), done(1, "old", "z"))
    assert r.task_error is None
    # `other` is reached at the frontier of this history, so it is recorded as the new version
    assert r.commands == [
        {"type": "RecordVersion", "change_id": "other", "version": 1},
        {"type": "CompleteWorkflow", "result": {"v": 1, "patched": True, "r": "z"}},
    ]
    r = run(lambda ctx, i: ctx.patched("p") or ctx.execute_activity("old"), sched(1, "old"))
    assert r.commands == [{"type": "ScheduleActivity", "seq": 1, "name": "old", "input": None}]


def test_marker_outside_the_supported_range_fails_the_task():
    marker = ("VersionMarkerRecorded", {"change_id": "new-step", "version": 5})
    r = run(versioned, marker)
    assert r.commands == [] and "change 'new-step' is at version 5 in the history" in r.task_error
    assert "supports 1..2" in r.task_error


def test_get_version_checks_its_arguments():
    r = run(lambda ctx, i: ctx.get_version("x", 3, 1))
    assert "min_supported must not exceed max_supported" in r.commands[0]["error"]
    with pytest.raises(TypeError):
        replay.freeze("x", object())
