"""ctx:execute_activity of the native API (require("assay.workflow")) translating Temporal option names,
refusing wrongly typed ones by field name, warning once per unknown key; ctx:wait_signal. In-process replay
on synthetic histories (no engine)."""

from __future__ import annotations

import logging

import pytest

from tests.lua.test_replay import STARTED, runner

HANDLERS = """
  HANDLERS.T = function(ctx, input) return ctx:execute_activity("x", 1, input) end
  HANDLERS.W = function(ctx, input) return ctx:wait_signal("go", input) end
"""


def scheduled(run, opts) -> dict:
    cmds, summary = run("T", [STARTED], opts)
    assert summary == "suspended", cmds
    (cmd,) = cmds
    return {k: v for k, v in cmd.items() if k not in ("type", "seq", "name", "input")}


def test_temporal_names_are_translated():
    run = runner(HANDLERS)
    got = scheduled(
        run,
        {
            "start_to_close_timeout": 30,
            "schedule_to_close_timeout": 600,
            "heartbeat_timeout": 5,
            "retry_policy": {
                "initial_interval": 0.5,
                "backoff_coefficient": 3,
                "maximum_interval": 60,
                "maximum_attempts": 5,
                "non_retryable_errors": ["PERMISSION_DENIED"],
            },
        },
    )
    assert got == {
        "start_to_close_secs": 30,
        "schedule_to_close_secs": 600,
        "heartbeat_timeout_secs": 5,
        "initial_interval_secs": 0.5,
        "backoff_coefficient": 3,
        "maximum_interval_secs": 60,
        "max_attempts": 5,
        "non_retryable_errors": ["PERMISSION_DENIED"],
    }


def test_native_names_pass_through_and_zero_attempts_is_unlimited():
    run = runner(HANDLERS)
    assert scheduled(run, {"max_attempts": 2, "start_to_close_secs": 9, "task_queue": "q2"}) == {
        "max_attempts": 2,
        "start_to_close_secs": 9,
        "task_queue": "q2",
    }
    assert scheduled(run, {"retry_policy": {"maximum_attempts": 0}}) == {"max_attempts": 10000}
    assert scheduled(run, {"retry_policy": {"non_retryable_error_types": ["X"]}}) == {
        "non_retryable_errors": ["X"]
    }


@pytest.mark.parametrize(
    "opts,fragment",
    [
        ({"start_to_close_timeout": "30"}, "opts.start_to_close_timeout must be a number, got string"),
        ({"heartbeat_timeout": 0}, "opts.heartbeat_timeout must be a positive number of seconds, got 0"),
        ({"retry_policy": "x"}, "opts.retry_policy must be a table, got string"),
        (
            {"retry_policy": {"maximum_attempts": -1}},
            "opts.retry_policy.maximum_attempts must be a non-negative integer",
        ),
        (
            {"retry_policy": {"initial_interval": -1}},
            "opts.retry_policy.initial_interval must be a non-negative number",
        ),
        (
            {"retry_policy": {"backoff_coefficient": 0.5}},
            "opts.retry_policy.backoff_coefficient must be a number >= 1",
        ),
        (
            {"retry_policy": {"non_retryable_errors": "X"}},
            "opts.retry_policy.non_retryable_errors must be a list",
        ),
        (
            {"start_to_close_secs": 3, "start_to_close_timeout": 4},
            "start_to_close_secs is given twice",
        ),
        ({"task_queue": 5}, "opts.task_queue must be a non-empty string"),
    ],
)
def test_wrong_types_fail_naming_the_field(opts, fragment):
    run = runner(HANDLERS)
    cmds, summary = run("T", [STARTED], opts)
    assert summary == "FailWorkflow"
    assert fragment in cmds[0]["error"], cmds[0]["error"]


def test_unknown_keys_warn_once_each_and_are_not_sent(caplog):
    run = runner(HANDLERS)
    with caplog.at_level(logging.WARNING, logger="assay.lua.worker"):
        for _ in range(3):
            got = scheduled(run, {"bogus": 1, "retry_policy": {"jitter": True, "maximum_attempts": 2}})
            assert got == {"max_attempts": 2}
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("unknown option 'bogus'" in m for m in msgs) == 1, msgs
    assert sum("unknown option 'retry_policy.jitter'" in m for m in msgs) == 1, msgs


def test_wait_signal_with_timeout():
    run = runner(HANDLERS)
    cmds, _ = run("W", [STARTED], {"timeout": 5})
    assert [c["type"] for c in cmds] == ["ScheduleTimer", "WaitForSignal"]
    cmds, _ = run("W", [STARTED, ("TimerScheduled", None), ("TimerFired", {"timer_seq": 1})], {"timeout": 5})
    assert cmds == [{"type": "CompleteWorkflow", "result": None}]  # nil on timeout
    cmds, _ = run("W", [STARTED, ("SignalReceived", {"signal": "go", "payload": {"u": 1}})], None)
    assert cmds == [{"type": "CompleteWorkflow", "result": {"u": 1}}]
    cmds, summary = run("W", [STARTED], "soon")
    assert summary == "FailWorkflow" and "ctx:wait_signal: opts must be a table" in cmds[0]["error"]
