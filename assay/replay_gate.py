"""The deploy gate behind `assay replay`: replay exported histories (format `assay-history/1`, see
docs/versioning.md) through a worker file's workflow code, offline, and report the first divergence.

Lua files go through the Lua runtime's replay mode (assay/lua/replay_gate.py). Python files go through
`assay.workflow`'s pure replay (`replay.run(handler, task, history)`), driven from outside: the code is
replayed over the history cut before each command event, and must produce that command there (the same
check a workflow task makes, event by event). Each result is
`{"ok", "outcome", "divergence": {"event_seq", "history", "code", "message"} | None, "error"}`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assay.protocol import CommandType, EventType


class GateError(Exception):
    """The worker file cannot be used (does not load, unsupported kind)."""


def replay_file(path: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".lua":
        from assay.lua.replay_gate import ScriptError, replay_lua

        try:
            return replay_lua(path, docs)
        except ScriptError as e:
            raise GateError(f"{path} does not load: {e.message}") from None
    if ext == ".py":
        return replay_python(path, docs)
    raise GateError(f"WORKER_FILE must be a .lua or .py worker file, got {path}")


# --- Python worker files ---------------------------------------------------------------------------
def _load_python(path: str) -> dict[str, Callable[..., Any]]:
    try:
        from assay import workflow as pyworkflow
    except ImportError:  # pragma: no cover - a build without the Python worker API
        raise GateError("this assay has no Python worker API (assay.workflow)") from None
    try:
        workflows, _activities = pyworkflow.load_worker_file(path)
    except SystemExit as e:
        raise GateError(f"{path} does not load: it exited ({e.code})") from None
    except Exception as e:
        raise GateError(f"{path} does not load: {type(e).__name__}: {e}") from None
    return workflows


def replay_python(path: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from assay.workflow import replay as pyreplay

    workflows = _load_python(path)
    out = []
    for doc in docs:
        wf = doc["workflow"]
        handler = workflows.get(str(wf.get("workflow_type")))
        if handler is None:
            out.append(
                {
                    "ok": False,
                    "outcome": "no handler",
                    "error": f"this worker file defines no workflow type '{wf.get('workflow_type')}'",
                }
            )
            continue
        out.append(
            check_history(lambda task, hist, h=handler: pyreplay.run(h, task, hist), wf, doc["events"])
        )
    return out


def _task(wf: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "workflow_id": wf.get("id"),
        "workflow_type": wf.get("workflow_type"),
        "namespace": wf.get("namespace"),
        "task_queue": wf.get("task_queue"),
        "run_id": wf.get("run_id"),
        "parent_id": wf.get("parent_id"),
        "input": wf.get("input"),
        "search_attributes": wf.get("search_attributes"),
        "created_at": wf.get("created_at"),
        "attempt": 1,
        "history": [dict(e) for e in events],
    }


def _expected(ev: Mapping[str, Any]) -> tuple[str, Callable[[Mapping[str, Any]], bool]] | None:
    """What the code must produce at this history event: (description, matcher), or None (not a command)."""
    t, p = ev.get("event_type"), ev.get("payload")
    pd = p if isinstance(p, dict) else {}
    if t == EventType.ActivityScheduled:
        seq, name = pd.get("activity_seq"), pd.get("name")
        return (
            f"ActivityScheduled '{name}' (activity #{seq})",
            lambda c: (
                c.get("type") == CommandType.ScheduleActivity
                and c.get("seq") == seq
                and c.get("name") == name
            ),
        )
    if t == EventType.TimerScheduled:
        seq = pd.get("timer_seq")
        return (
            f"TimerScheduled {pd.get('duration_secs')}s (timer #{seq})",
            lambda c: c.get("type") == CommandType.ScheduleTimer and c.get("seq") == seq,
        )
    if t == EventType.ChildWorkflowStarted:
        cid = pd.get("child_workflow_id")
        return (
            f"ChildWorkflowStarted '{cid}'",
            lambda c: c.get("type") == CommandType.StartChildWorkflow and c.get("workflow_id") == cid,
        )
    if t == EventType.WorkflowAwaitingSignal:
        name = pd.get("signal")
        return (
            f"WorkflowAwaitingSignal '{name}'",
            lambda c: c.get("type") == CommandType.WaitForSignal and c.get("name") == name,
        )
    if t == EventType.WorkflowCompleted:
        if isinstance(p, dict) and p.get("continued_as_new"):
            return (
                "WorkflowCompleted (continued as new)",
                lambda c: c.get("type") == CommandType.ContinueAsNew,
            )
        return ("WorkflowCompleted", lambda c: c.get("type") == CommandType.CompleteWorkflow)
    if t == EventType.WorkflowFailed and not pd.get("terminated"):
        return (f"WorkflowFailed ({pd.get('error')})", lambda c: c.get("type") == CommandType.FailWorkflow)
    return None


def _did(result: Any) -> str:
    if result.task_error:
        return f"fails the workflow task: {result.task_error}"
    cmds = [c for c in result.commands if c.get("type") not in (CommandType.RecordSnapshot,)]
    if not cmds:
        return "sends no command"
    c = cmds[-1] if result.summary != "suspended" else cmds[0]
    t = c.get("type")
    if t == CommandType.ScheduleActivity:
        return f"schedules activity '{c.get('name')}' (activity #{c.get('seq')})"
    if t == CommandType.ScheduleTimer:
        return f"starts a {c.get('duration_secs')}s timer (timer #{c.get('seq')})"
    if t == CommandType.WaitForSignal:
        return f"waits for signal '{c.get('name')}'"
    if t == CommandType.StartChildWorkflow:
        return f"starts child workflow '{c.get('workflow_id')}'"
    if t == CommandType.CompleteWorkflow:
        return "completes the workflow"
    if t == CommandType.FailWorkflow:
        return f"fails the workflow: {c.get('error')}"
    if t == CommandType.ContinueAsNew:
        return "continues as new"
    if t == CommandType.CancelWorkflow:
        return "cancels the workflow"
    return f"sends {t}"


def _divergence(seq: Any, history: str, code: str) -> dict[str, Any]:
    msg = f"nondeterministic workflow: event {seq}: the history has {history}; the code {code}"
    return {"event_seq": seq, "history": history, "code": code, "message": msg}


def check_history(
    run: Callable[[dict[str, Any], list[dict[str, Any]]], Any],
    wf: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Replay `events` through `run(task, history) -> result(commands, summary, task_error)`, event by event."""
    evs = sorted((dict(e) for e in events), key=lambda e: int(e.get("seq") or 0))
    task = _task(wf, evs)
    cancelled_at = next(
        (int(e["seq"]) for e in evs if e.get("event_type") == EventType.WorkflowCancelRequested), None
    )
    for i, ev in enumerate(evs):
        if cancelled_at is not None and int(ev["seq"]) > cancelled_at:
            break  # after a cancellation request the code's path is the cancellation's
        want = _expected(ev)
        if want is None:
            continue
        prefix = evs[:i]
        r = run(task, prefix)
        if r.task_error or not any(want[1](c) for c in r.commands):
            return {"ok": False, "outcome": r.summary, "divergence": _divergence(ev["seq"], want[0], _did(r))}
    full = run(task, evs)
    if full.task_error:
        # find where: the shortest history on which the code fails its task
        for i in range(1, len(evs) + 1):
            r = run(task, evs[:i])
            if r.task_error:
                ev = evs[i - 1]
                return {
                    "ok": False,
                    "outcome": "task failed",
                    "divergence": _divergence(ev["seq"], str(ev.get("event_type")), _did(r)),
                }
        return {
            "ok": False,
            "outcome": "task failed",
            "divergence": _divergence("?", "its events", _did(full)),
        }
    return {"ok": True, "outcome": full.summary}
